"""Wrong uses get a message that names the fix, and leave nothing half-written."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import nnunet_env, run
from nnunet_distilldsm.trainers.slab_plans import SlabPlanError, make_slab_plans


def test_3d_configuration_is_refused_with_the_command_to_use(planned):
    env, _ = planned
    proc = run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "DistillDSMTrainer", "-device", "cpu"], env,
               check=False)
    assert proc.returncode != 0
    assert "Run: nnUNetv2_train DATASET 2d FOLD -tr DistillDSMTrainer" in proc.stderr
    assert not os.path.exists(os.path.join(env["nnUNet_results"], "Dataset901_DepthContext",
                                           "DistillDSMTrainer__nnUNetPlans__3d_fullres"))


def test_trainer_not_found_without_nnUNet_extTrainer(planned):
    env, _ = planned
    env = {k: v for k, v in env.items() if k != "nnUNet_extTrainer"}
    proc = run(["nnUNetv2_train", "901", "2d", "0", "-tr", "DistillDSMTrainer", "-device", "cpu"], env, check=False)
    assert proc.returncode != 0
    assert "Could not find requested nnunet trainer DistillDSMTrainer" in proc.stderr
    assert "nnUNet_extTrainer" in proc.stderr  # README: export nnUNet_extTrainer=$(nnunet-distilldsm trainer-dir)


def test_single_slice_dataset_is_refused_before_anything_is_written(tmp_path):
    env = nnunet_env(tmp_path)
    folder = os.path.join(env["nnUNet_raw"], "Dataset902_Flat")
    for sub in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(folder, sub))
    rng = np.random.default_rng(0)
    for i in range(4):
        lab = np.zeros((1, 32, 32), np.uint8)
        lab[0, 8:20, 8:20] = 1
        for arr, path in ((lab + rng.normal(0, .1, lab.shape).astype(np.float32), f"imagesTr/c{i}_0000.nii.gz"),
                          (lab, f"labelsTr/c{i}.nii.gz")):
            sitk.WriteImage(sitk.GetImageFromArray(arr), os.path.join(folder, path))
    json.dump({"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, "numTraining": 4,
               "file_ending": ".nii.gz"}, open(os.path.join(folder, "dataset.json"), "w"))
    run(["nnUNetv2_plan_and_preprocess", "-d", "902", "-c", "2d", "-np", "1"], env)
    proc = run(["nnUNetv2_train", "902", "2d", "0", "-tr", "DistillDSMTrainer", "-device", "cpu"], env, check=False)
    assert proc.returncode != 0
    assert "For true 2D images use the stock trainer" in proc.stderr
    assert not os.path.exists(os.path.join(env["nnUNet_results"], "Dataset902_Flat"))


def test_alpha_that_cannot_split_nnunet_channels():
    plans = {"configurations": {"2d": {"patch_size": [64, 64], "batch_size": 8, "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"features_per_stage": [32, 64], "kernel_sizes": [[3, 3]] * 2, "strides": [[1, 1], [2, 2]]},
        "_kw_requires_import": []}}}, "original_median_shape_after_transp": [10, 64, 64]}
    with pytest.raises(SlabPlanError, match="not a multiple of 4"):
        make_slab_plans(plans, "2d", alpha=0.1)
    cfg = make_slab_plans(plans, "2d")["configurations"]["2d"]
    assert cfg["patch_size"] == [8, 64, 64] and cfg["batch_size"] == 1  # 10 slices do not fit a batch of 8
