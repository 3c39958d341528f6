"""nnU-Net's own commands, for real, on the small synthetic dataset: train, predict, evaluate,
ensemble with stock 3d_fullres, export and install, resume after SIGKILL."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk

from benchmarks.metrics import dice
from conftest import BIN, DS, predict, raw, results, run
from helpers import without_final_validation

pytestmark = pytest.mark.slow  # trains, predicts or times networks (setup.cfg)


def test_results_plans_hold_the_slab_configuration(trained):
    env, _ = trained
    cfg = json.load(open(os.path.join(results(env, "DistillDSMTrainer_demo"), "plans.json")))["configurations"]["2d"]
    arch = cfg["architecture"]
    assert len(cfg["patch_size"]) == 3 and cfg["patch_size"][0] > 1
    assert arch["network_class_name"] == "nnunet_distilldsm.architectures.slab_unet.SlabUNet"
    assert all(s[0] == 1 for s in arch["arch_kwargs"]["strides"])
    assert arch["arch_kwargs"]["dsm"] == "distill" and arch["arch_kwargs"]["alpha"] == 0.5
    # the slab batch holds about as many slices as the planned 2d batch
    planned_cfg = json.load(open(os.path.join(env["nnUNet_preprocessed"], DS,
                                              "nnUNetPlans.json")))["configurations"]["2d"]
    assert abs(cfg["batch_size"] * cfg["patch_size"][0] - planned_cfg["batch_size"]) <= cfg["patch_size"][0] / 2


def test_predictions_keep_geometry_and_pass_a_dice_floor(trained):
    env, out = trained
    cases = sorted(f for f in os.listdir(raw(env, "labelsTs")) if f.endswith(".nii.gz"))
    fg_dice, class_dice = [], {1: [], 2: []}
    for case in cases:
        img = sitk.ReadImage(os.path.join(raw(env, "imagesTs"), case.replace(".nii.gz", "_0000.nii.gz")))
        pred = sitk.ReadImage(os.path.join(out, case))
        assert pred.GetSize() == img.GetSize()
        assert np.allclose(pred.GetSpacing(), img.GetSpacing()) and np.allclose(pred.GetOrigin(), img.GetOrigin())
        assert np.allclose(pred.GetDirection(), img.GetDirection())
        p = sitk.GetArrayFromImage(pred) > 0
        r = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(raw(env, "labelsTs"), case))) > 0
        fg_dice.append(dice(p, r, True))
        seg, ref = (sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(d, case))) for d in (out, raw(env, "labelsTs")))
        for c in class_dice:
            class_dice[c].append(dice(seg, ref, c))
        assert (sitk.GetArrayFromImage(pred) > 0).any(axis=(1, 2)).sum() > 1  # objects span several slices
    run(["nnUNetv2_evaluate_folder", raw(env, "labelsTs"), out, "-djfile",
         os.path.join(results(env, "DistillDSMTrainer_demo"), "dataset.json"),
         "-pfile", os.path.join(results(env, "DistillDSMTrainer_demo"), "plans.json")], env)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert min(fg_dice) >= 0.75  # objects vs background: easy after the demo budget
    # balls vs cylinders needs depth context and more training than a test affords: no floor here
    # (see the benchmark); nnU-Net's evaluation must agree with our own count
    for c, values in class_dice.items():
        assert abs(summary["mean"][str(c)]["Dice"] - np.mean(values)) < 1e-6


def test_ensemble_with_stock_3d_fullres(trained, stock_3d, tmp_path):
    env, out_dsm = trained
    out_3d, out_ens = str(tmp_path / "pred3d"), str(tmp_path / "ens")
    predict(env, out_3d, "nnUNetTrainer_tiny", "3d_fullres", ["--save_probabilities"])
    run(["nnUNetv2_ensemble", "-i", out_dsm, out_3d, "-o", out_ens, "-np", "1", "--save_npz"], env)
    for case in sorted(f for f in os.listdir(out_dsm) if f.endswith(".npz")):
        a, b = (np.load(os.path.join(d, case))["probabilities"] for d in (out_dsm, out_3d))
        ens = np.load(os.path.join(out_ens, case))["probabilities"]
        np.testing.assert_allclose(ens, (a + b) / 2, atol=1e-3)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(out_ens, case.replace(".npz", ".nii.gz"))))
        assert seg.shape == a.shape[1:]


def test_export_install_and_predict_from_the_installed_model(trained, tmp_path):
    env, out_dsm = trained
    zip_path = str(tmp_path / "model.zip")
    run(["nnUNetv2_export_model_to_zip", "-d", "901", "-o", zip_path, "-c", "2d", "-tr", "DistillDSMTrainer_demo",
         "-f", "0"], env)
    env2 = dict(env, nnUNet_results=str(tmp_path / "installed"))
    os.makedirs(env2["nnUNet_results"])
    run(["nnUNetv2_install_pretrained_model_from_zip", zip_path], env2)
    out = str(tmp_path / "pred_installed")
    predict(env2, out, "DistillDSMTrainer_demo")
    for case in sorted(f for f in os.listdir(out_dsm) if f.endswith(".nii.gz")):
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(d, case))) for d in (out_dsm, out))
        assert np.array_equal(a, b)


def test_sigkill_mid_training_then_continue(planned, tmp_path):
    """_calib (2 epochs of 25 iterations): its second epoch outlasts the kill's delay on a fast machine too
    (_tiny's 4 iterations finished before the kill on CI)."""
    env, _ = planned
    trainer = "DistillDSMTrainer_calib"
    folder = os.path.join(results(env, trainer), "fold_1")
    cmd = [os.path.join(BIN, "nnUNetv2_train"), "901", "2d", "1", "-tr", trainer, "-device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    latest = os.path.join(folder, "checkpoint_latest.pth")
    deadline = time.time() + 600
    while not os.path.exists(latest) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let it finish writing (nnU-Net writes the file in place), and get into the next epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(folder, "checkpoint_final.pth")), "finished before it could be killed"
    run(cmd + ["--c"], without_final_validation(env))
    assert os.path.exists(os.path.join(folder, "checkpoint_final.pth"))
    import torch
    ckpt = torch.load(os.path.join(folder, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert ckpt["current_epoch"] == 2 and ckpt["trainer_name"] == trainer
    out = str(tmp_path / "pred")
    run(["nnUNetv2_predict", "-i", raw(env, "imagesTs"), "-o", out, "-d", "901", "-c", "2d", "-tr",
         trainer, "-f", "1", "-device", "cpu", "-npp", "0", "-nps", "0"], env)
    assert len([f for f in os.listdir(out) if f.endswith(".nii.gz")]) == 3


def test_two_slab_depths_agree_and_cover_every_slice(trained, tmp_path):
    """The same model predicting with slabs twice as deep as it trained on (an edit of plans.json's patch):
    nnU-Net's sliding window covers every slice at either depth, and the two differ only where a slice sees a
    slab end's zeros. The strict property, identical predictions at both depths, holds for whole-stack
    prediction, which has no slab ends (test_whole_stack.py)."""
    import shutil
    env, out_dsm = trained
    env2 = dict(env, nnUNet_results=str(tmp_path / "res"))
    shutil.copytree(results(env, "DistillDSMTrainer_demo"), results(env2, "DistillDSMTrainer_demo"))
    plans_file = os.path.join(results(env2, "DistillDSMTrainer_demo"), "plans.json")
    plans = json.load(open(plans_file))
    plans["configurations"]["2d"]["patch_size"][0] *= 2
    json.dump(plans, open(plans_file, "w"))
    out = str(tmp_path / "pred_deeper")
    predict(env2, out, "DistillDSMTrainer_demo")
    for case in sorted(f for f in os.listdir(out_dsm) if f.endswith(".nii.gz")):
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(d, case))) for d in (out_dsm, out))
        assert a.shape == b.shape
        # slabs of 16 vs 8 slices on the test dataset: voxel agreement 0.9973-0.9998 (median 0.9981) over 5 fresh
        # trainings x 3 cases (`python -m benchmarks.checks.guard_bounds --only depth`, 2026-12-06, b2cf738),
        # 0.9926 the lowest of earlier runs: the bound leaves a disagreement of 1%, 1.35x the most seen (0.74%).
        # Per-class Dice between the two is no bound (0.894 in one run: a small class near a slab end)
        assert (a == b).mean() >= 0.99


def test_find_best_configuration_compares_with_stock_2d(trained, stock_2d):
    env, _ = trained
    run(["nnUNetv2_find_best_configuration", "901", "-c", "2d", "-tr", "DistillDSMTrainer_demo", "nnUNetTrainer_tiny",
         "-f", "0", "-np", "1"], env)
    info = json.load(open(os.path.join(env["nnUNet_results"], DS, "inference_information.json")))
    assert set(info["all_results"]) >= {"nnUNetTrainer_tiny__nnUNetPlans__2d",
                                         "DistillDSMTrainer_demo__nnUNetPlans__2d"}
    assert any(k.startswith("ensemble") for k in info["all_results"])
    assert "best_model_or_ensemble" in info
