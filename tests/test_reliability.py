"""Reliability: plans without 2d, datasets mixing single- and multi-slice cases, volumes thinner than the slab,
NaN/inf in images, empty label maps, corrupted checkpoints, deterministic inference.

Real nnU-Net commands on one small dataset (Dataset903_Mixed, written here): planned and preprocessed once,
DistillDSMTrainer_tiny trained once on fold 0, and that model reused by every inference test.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import nnunet_env, plan_and_preprocess, run
from nnunet_distilldsm.trainers.slab_plans import SlabPlanError, SlabRecipe, make_slab_plans

DS, DS_ID, TRAINER = "Dataset903_Mixed", "903", "DistillDSMTrainer_tiny"
# c0-c5: 12 slices with a bright square in every slice; c6: a single slice; c7: 12 slices, all background
DEPTHS = {**{f"c{i}": 12 for i in range(6)}, "c6": 1, "c7": 12}
EMPTY = "c7"
SPLITS = [
    {"train": ["c0", "c1", "c2", "c3", "c4", "c6"], "val": ["c5"]},  # fold 0: the single-slice case is trained on
    {"train": ["c0", EMPTY], "val": ["c5", EMPTY]},  # fold 1: half the training cases are all background
]
SQUARE = (slice(8, 20), slice(10, 22))


def case(name, depth, empty=False):
    """(image, label), float32 / uint8 arrays (z, y, x): a bright square in every slice on noise."""
    rng = np.random.default_rng(sum(map(ord, name)))
    label = np.zeros((depth, 32, 32), np.uint8)
    if not empty:
        label[:, SQUARE[0], SQUARE[1]] = 1
    return (label * 100 + rng.normal(0, 10, label.shape)).astype(np.float32), label


def write(arr, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(img, path)


def model_dir(env):
    return os.path.join(env["nnUNet_results"], DS, f"{TRAINER}__nnUNetPlans__2d")


def predict(env, inp, out, fold=0, check=True):
    return run(["nnUNetv2_predict", "-i", inp, "-o", out, "-d", DS_ID, "-c", "2d", "-tr", TRAINER, "-f", str(fold),
                "-device", "cpu", "-npp", "1", "-nps", "1", "--save_probabilities"], env, check=check)


def segmentation(folder, name):
    return sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder, f"{name}.nii.gz")))


def probabilities(folder, name):
    return np.load(os.path.join(folder, f"{name}.npz"))["probabilities"]


def copy_model(env, root):
    """A copy of the trained fold-0 model under a new nnUNet_results; returns (env, model folder)."""
    env2 = dict(env, nnUNet_results=str(root))
    shutil.copytree(model_dir(env), model_dir(env2), ignore=shutil.ignore_patterns("validation", "*.png"))
    return env2, model_dir(env2)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """(env, root): Dataset903 planned and preprocessed, DistillDSMTrainer_tiny trained on fold 0, and its
    predictions (with probabilities) of a 1-slice, a 2-slice and a 12-slice image in root/pred."""
    root = tmp_path_factory.mktemp("mixed")
    # one OpenMP thread: on the 2 shared cores, 2 threads wait on each other whenever another process holds a
    # core, and every small op of these tiny networks then takes 10-40x longer
    env = dict(nnunet_env(root), OMP_NUM_THREADS="1")
    raw = os.path.join(env["nnUNet_raw"], DS)
    for name, depth in DEPTHS.items():
        image, label = case(name, depth, empty=name == EMPTY)
        write(image, os.path.join(raw, "imagesTr", f"{name}_0000.nii.gz"))
        write(label, os.path.join(raw, "labelsTr", f"{name}.nii.gz"))
    with open(os.path.join(raw, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "MRI"}, "labels": {"background": 0, "square": 1},
                   "numTraining": len(DEPTHS), "file_ending": ".nii.gz"}, f)
    plan_and_preprocess(env, int(DS_ID), ["2d"], processes=1)
    with open(os.path.join(env["nnUNet_preprocessed"], DS, "splits_final.json"), "w") as f:
        json.dump(SPLITS, f)  # nnU-Net's own way to choose the folds
    run(["nnUNetv2_train", DS_ID, "2d", "0", "-tr", TRAINER, "-device", "cpu"], env)
    for name, depth in (("one", 1), ("two", 2), ("vol", 12)):
        write(case(name, depth)[0], str(root / "inputs" / f"{name}_0000.nii.gz"))
    predict(env, str(root / "inputs"), str(root / "pred"))
    return env, root


def test_plans_without_2d_configuration_name_the_command_that_makes_them():
    plans = {"configurations": {"3d_fullres": {"patch_size": [16, 64, 64], "batch_size": 2, "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"features_per_stage": [32, 64], "kernel_sizes": [[3, 3, 3]] * 2,
                        "strides": [[1, 1, 1], [2, 2, 2]]}, "_kw_requires_import": []}}},
        "original_median_shape_after_transp": [16, 64, 64]}
    with pytest.raises(SlabPlanError, match=r"nnUNetv2_plan_and_preprocess -d DATASET -c 2d") as err:
        make_slab_plans(plans, "2d", SlabRecipe(dsm="distill"))
    assert "'2d'" in str(err.value) and "3d_fullres" in str(err.value)


@pytest.mark.slow
def test_dataset_mixing_single_and_multi_slice_cases_trains_and_predicts_a_single_slice(mixed):
    env, root = mixed
    planned = json.load(open(os.path.join(env["nnUNet_preprocessed"], DS, "nnUNetPlans.json")))
    assert planned["original_median_shape_after_transp"][0] == 12
    assert "c6" in SPLITS[0]["train"] and DEPTHS["c6"] == 1  # the single-slice case was trained on
    assert os.path.isfile(os.path.join(model_dir(env), "fold_0", "checkpoint_final.pth"))
    img = sitk.ReadImage(str(root / "inputs" / "one_0000.nii.gz"))
    pred = sitk.ReadImage(str(root / "pred" / "one.nii.gz"))
    assert pred.GetSize() == img.GetSize() == (32, 32, 1)
    assert np.allclose(pred.GetSpacing(), img.GetSpacing()) and np.allclose(pred.GetOrigin(), img.GetOrigin())
    prob = probabilities(root / "pred", "one")
    assert prob.shape == (2, 1, 32, 32) and np.isfinite(prob).all()


@pytest.mark.slow
def test_volume_with_fewer_slices_than_the_slab_predicts_every_slice(mixed):
    env, root = mixed
    slab_depth = json.load(open(os.path.join(model_dir(env), "plans.json")))["configurations"]["2d"]["patch_size"][0]
    assert slab_depth > 2  # 5 here: the 2-slice image is zero-padded to one slab
    seg = segmentation(root / "pred", "two")
    assert seg.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(root / "inputs" / "two_0000.nii.gz"))).shape
    prob = probabilities(root / "pred", "two")
    assert prob.shape == (2, 2, 32, 32) and np.isfinite(prob).all()
    np.testing.assert_allclose(prob.sum(0), 1, atol=1e-4)
    inside = np.zeros((32, 32), bool)
    inside[SQUARE] = True
    for z in range(2):  # each slice is predicted from its own content, not left to padding: the square stands out
        # (a probability contrast, not a Dice floor: 8 iterations of training draw the square's edge unevenly)
        assert prob[1, z][inside].mean() > prob[1, z][~inside].mean() + 0.2, f"slice {z}"
        assert seg[z][inside].mean() > seg[z][~inside].mean(), f"slice {z}"


def nonfinite_inputs(folder):
    """The same 6-slice image three times: one voxel NaN, one voxel inf, that voxel 0."""
    image = case("bad", 6)[0]
    for name, value in (("nan", np.nan), ("inf", np.inf), ("zero", 0.0)):
        bad = image.copy()
        bad[2, 3, 4] = value
        write(bad, os.path.join(folder, f"{name}_0000.nii.gz"))


@pytest.mark.slow
def test_nan_and_inf_in_a_nifti_image_are_read_as_zero(mixed):
    # What nnU-Net does now with the default reader (SimpleITKIO for .nii.gz): SimpleITK (ITK's NIfTI reader)
    # returns the NaN / inf voxels as 0 (the file holds them; nibabel reads them back), so the prediction is
    # that of the image with those voxels set to 0: finite probabilities, exit 0, no message.
    env, root = mixed
    nonfinite_inputs(str(root / "nonfinite"))
    out = root / "pred_nonfinite"
    predict(env, str(root / "nonfinite"), str(out))
    for name in ("nan", "inf"):
        assert np.isfinite(probabilities(out, name)).all()
        assert np.array_equal(probabilities(out, name), probabilities(out, "zero"))
        assert np.array_equal(segmentation(out, name), segmentation(out, "zero"))


@pytest.mark.slow
def test_nan_or_inf_reaching_the_network_is_refused_with_the_fix(mixed, tmp_path):
    # With a reader that keeps NaN / inf (NibabelIO, what planning writes when dataset.json sets
    # "overwrite_image_reader_writer": "NibabelIO"; also SimpleITK for .mha / .nrrd), nnU-Net's z-score
    # normalization turns one such voxel into an all-NaN image; stock nnUNetv2_predict would exit 0 and write an
    # all-background segmentation with all-NaN probabilities, silently. SlabUNet refuses such input.
    env, root = mixed
    env2, model = copy_model(env, tmp_path / "results")
    plans = json.load(open(os.path.join(model, "plans.json")))
    plans["image_reader_writer"] = "NibabelIO"
    json.dump(plans, open(os.path.join(model, "plans.json"), "w"))
    nonfinite_inputs(str(tmp_path / "in"))
    out = tmp_path / "out"
    proc = predict(env2, str(tmp_path / "in"), str(out), check=False)
    assert proc.returncode != 0  # a clear error: which case, what is wrong, what to do; nothing written for it
    case_name = re.findall(r"Predicting (\w+):", proc.stdout)[-1]
    assert case_name in ("nan", "inf")
    assert "NaN or inf" in proc.stderr and "Replace them" in proc.stderr
    assert not os.path.exists(out / f"{case_name}.nii.gz")


@pytest.mark.slow
def test_empty_label_map_among_training_cases(mixed):
    env, _ = mixed
    label = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(env["nnUNet_raw"], DS, "labelsTr", f"{EMPTY}.nii.gz")))
    assert not label.any()
    run(["nnUNetv2_train", DS_ID, "2d", "1", "-tr", TRAINER, "-device", "cpu"], env)  # fold 1: train c0 and c7
    folder = os.path.join(model_dir(env), "fold_1")
    ckpt = torch.load(os.path.join(folder, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert ckpt["current_epoch"] == 2 and np.isfinite(ckpt["logging"]["train_losses"]).all()
    summary = json.load(open(os.path.join(folder, "validation", "summary.json")))
    assert {c["reference_file"].split(os.sep)[-1] for c in summary["metric_per_case"]} == {"c5.nii.gz", "c7.nii.gz"}


@pytest.mark.slow
def test_truncated_checkpoint_fails_without_writing_a_prediction(mixed, tmp_path):
    # nnU-Net's message (torch.load in nnUNetPredictor.initialize_from_trained_model_folder), last line of stderr:
    # RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory. This is an
    # internal miniz error. If you are seeing this error, there is a high likelihood that your checkpoint file is
    # corrupted. ... (the path of the checkpoint is not named; the traceback shows the loading step)
    env, root = mixed
    env2, model = copy_model(env, tmp_path / "results")
    ckpt = os.path.join(model, "fold_0", "checkpoint_final.pth")
    os.truncate(ckpt, os.path.getsize(ckpt) // 2)
    out = tmp_path / "out"
    proc = predict(env2, str(root / "inputs"), str(out), check=False)
    assert proc.returncode != 0
    assert "checkpoint file is corrupted" in proc.stderr
    assert not out.exists() or not [f for f in os.listdir(out) if f.endswith((".nii.gz", ".npz"))]


@pytest.mark.slow
def test_two_predictions_of_the_same_cases_are_bitwise_identical(mixed):
    # Segmentations are bitwise identical. Probabilities are bitwise identical too with one OpenMP thread (as
    # here); with 2 threads we saw two runs differ by up to 1.3e-6, so they are only compared within 1e-5.
    env, root = mixed
    again = root / "pred_again"
    predict(env, str(root / "inputs"), str(again))
    for name in ("one", "two", "vol"):
        assert np.array_equal(segmentation(root / "pred", name), segmentation(again, name)), name
        np.testing.assert_allclose(probabilities(again, name), probabilities(root / "pred", name), rtol=0, atol=1e-5)
