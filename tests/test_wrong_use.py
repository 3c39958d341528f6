"""Wrong uses get a message that names the fix, and leave nothing half-written."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import nnunet_env, plan_and_preprocess, run
from helpers import load_dataset_json, load_plans, nnunet_trainer
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, ResidualDSM
from nnunet_distilldsm.trainers import DistillDSMTrainer
from nnunet_distilldsm.trainers.slab_plans import SlabPlanError, SlabRecipe, make_slab_plans

SLAB_TRAINERS = ["DistillDSMTrainer", "SlicesAsChannelsTrainer"]


@pytest.mark.slow
def test_nnUNetv2_train_refuses_a_3d_configuration_with_the_command_to_use(planned):
    """The command path, once: the refusal reaches nnUNetv2_train's stderr and nothing is written. The other
    start-up errors are raised in this process by the same lookup and constructor (nnunet_trainer)."""
    env, _ = planned
    proc = run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "DistillDSMTrainer", "-device", "cpu"], env,
               check=False, in_subprocess=True)
    assert proc.returncode != 0
    assert "SlabPlanError: DistillDSMTrainer trains nnU-Net's 2d configuration" in proc.stderr
    assert "Run: nnUNetv2_train DATASET 2d FOLD -tr DistillDSMTrainer" in proc.stderr
    assert not os.path.exists(os.path.join(env["nnUNet_results"], "Dataset901_DepthContext",
                                           "DistillDSMTrainer__nnUNetPlans__3d_fullres"))


@pytest.mark.parametrize("trainer", SLAB_TRAINERS)
def test_3d_configuration_is_refused_with_the_command_to_use(planned, trainer, monkeypatch, tmp_path):
    env = dict(planned[0], nnUNet_results=str(tmp_path / "res"))
    with pytest.raises(SlabPlanError) as e:
        nnunet_trainer(monkeypatch, env, 901, "3d_fullres", trainer)
    assert str(e.value).startswith(f"{trainer} trains nnU-Net's 2d configuration")
    assert f"Run: nnUNetv2_train DATASET 2d FOLD -tr {trainer}" in str(e.value)
    assert not os.path.exists(tmp_path / "res")


def test_trainer_not_found_without_nnUNet_extTrainer(planned, monkeypatch, tmp_path):
    env = {k: v for k, v in planned[0].items() if k != "nnUNet_extTrainer"}
    with pytest.raises(RuntimeError) as e:
        nnunet_trainer(monkeypatch, dict(env, nnUNet_results=str(tmp_path / "res")), 901, "2d", "DistillDSMTrainer")
    assert "Could not find requested nnunet trainer DistillDSMTrainer" in str(e.value)
    assert "nnUNet_extTrainer" in str(e.value)  # README: export nnUNet_extTrainer=$(nnunet-distilldsm trainer-dir)


@pytest.fixture(scope="module")
def single_slice_dataset(tmp_path_factory):
    """env with Dataset902_Flat (images of one slice) planned and preprocessed."""
    env = nnunet_env(tmp_path_factory.mktemp("flat"))
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
    plan_and_preprocess(env, 902, ["2d"], processes=1)
    return env


@pytest.mark.parametrize("trainer", SLAB_TRAINERS)
def test_single_slice_dataset_is_refused_before_anything_is_written(single_slice_dataset, trainer, monkeypatch):
    env = single_slice_dataset
    with pytest.raises(SlabPlanError) as e:
        nnunet_trainer(monkeypatch, env, 902, "2d", trainer)
    assert str(e.value).startswith(f"{trainer}: the dataset's images have a median of 1 slice(s)")
    assert "For true 2D images use the stock trainer" in str(e.value)
    assert not os.path.exists(os.path.join(env["nnUNet_results"], "Dataset902_Flat"))


def test_alpha_that_cannot_split_nnunet_channels():
    plans = {"configurations": {"2d": {"patch_size": [64, 64], "batch_size": 8, "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"features_per_stage": [32, 64], "kernel_sizes": [[3, 3]] * 2, "strides": [[1, 1], [2, 2]]},
        "_kw_requires_import": []}}}, "original_median_shape_after_transp": [10, 64, 64]}
    with pytest.raises(SlabPlanError, match="not a multiple of 4"):
        make_slab_plans(plans, "2d", SlabRecipe(dsm="distill", alpha=0.1))
    cfg = make_slab_plans(plans, "2d", SlabRecipe(dsm="distill"))["configurations"]["2d"]
    assert cfg["patch_size"] == [8, 64, 64] and cfg["batch_size"] == 1  # 10 slices do not fit a batch of 8


@pytest.mark.parametrize("dsm,setting,value", [
    ("distill", "alpha", 0.0), ("distill", "alpha", -0.5), ("distill", "alpha", 1.5),
    ("residual", "shift_fraction", 0.0), ("residual", "shift_fraction", -0.125),
    ("residual", "shift_fraction", 0.5000001), ("residual", "shift_fraction", 0.75)])
def test_module_setting_outside_its_range_is_refused_by_the_slab_plans(planned, dsm, setting, value):
    """On nnU-Net's real plans: the plan refuses what the network would refuse, with the network's own message."""
    env, _ = planned
    with pytest.raises(SlabPlanError) as e:
        make_slab_plans(load_plans(env), "2d", SlabRecipe(dsm=dsm, **{setting: value}), trainer_name="MyDSMTrainer")
    message = str(e.value)
    assert message.startswith("MyDSMTrainer: ")
    assert message.endswith(f"(checked at stage 0 of the planned 2d network, 32 channels). Set {setting} in the "
                            f"trainer's recipe to a value that fits")
    with pytest.raises(ValueError) as module_error:
        DistillDSM(32, value) if dsm == "distill" else ResidualDSM(32, value)
    assert str(module_error.value) in message  # one rule, stated once: the module's
    # the other module kind ignores the setting, and the edge values are accepted
    other = "residual" if dsm == "distill" else "distill"
    assert make_slab_plans(load_plans(env), "2d", SlabRecipe(dsm=other, **{setting: value}))["configurations"]["2d"][
        "architecture"]["arch_kwargs"]["dsm"] == other
    edge = {"alpha": 1.0, "shift_fraction": 0.5}[setting]
    kwargs = make_slab_plans(load_plans(env), "2d", SlabRecipe(dsm=dsm, **{setting: edge}))["configurations"]["2d"][
        "architecture"]["arch_kwargs"]
    assert kwargs[setting] == edge


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5])
def test_trainer_with_alpha_outside_0_1_stops_at_its_start(planned, alpha):
    """nnUNetv2_train builds the trainer first: a trainer class setting a bad alpha fails there, with SlabPlanError,
    before nnU-Net's own __init__ (nothing built, nothing written)."""
    env, _ = planned
    trainer = type("DistillDSMTrainer_badAlpha", (DistillDSMTrainer,), {"recipe": SlabRecipe(dsm="distill",
                                                                                             alpha=alpha)})
    with pytest.raises(SlabPlanError, match=r"^DistillDSMTrainer_badAlpha: Distill DSM: alpha must be in \(0, 1\] .*, "
                                            r"got " + str(alpha)):
        trainer(load_plans(env), "2d", 0, load_dataset_json(env), torch.device("cpu"))
