"""`nnunet-distilldsm predict`: whole stacks at once, exact whatever the slab depth or chunk, and no
complete-looking file from a killed run."""
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import BIN, raw, results, run

TRAINER = "DistillDSMTrainer_demo"


def predict_whole_stack(env, inp, out, trainer=TRAINER, extra=(), check=True):
    return run(["nnunet-distilldsm", "predict", "-i", inp, "-o", out, "-d", "901", "-tr", trainer, "-f", "0",
                "-device", "cpu", "-npp", "1", "-nps", "1", *extra], env, check=check)


def cases(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".nii.gz")) if os.path.isdir(folder) else []


def array(folder, case):
    return sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder, case)))


def dice(a, b, c):
    return 2 * ((a == c) & (b == c)).sum() / max(1, (a == c).sum() + (b == c).sum())


def test_whole_stack_predictions_do_not_depend_on_slab_depth_or_chunk(trained, tmp_path):
    env, out_stock = trained
    out = str(tmp_path / "whole")
    predict_whole_stack(env, raw(env, "imagesTs"), out, extra=["--save_probabilities"])
    # the same model with plans.json's slab depth doubled (as in the stock-predictor test), and with chunks
    # of 2 slices plus the halo
    env2 = dict(env, nnUNet_results=str(tmp_path / "res"))
    shutil.copytree(results(env, TRAINER), results(env2, TRAINER))
    plans_file = os.path.join(results(env2, TRAINER), "plans.json")
    plans = json.load(open(plans_file))
    plans["configurations"]["2d"]["patch_size"][0] *= 2
    json.dump(plans, open(plans_file, "w"))
    out_deeper, out_chunks = str(tmp_path / "deeper"), str(tmp_path / "chunks")
    predict_whole_stack(env2, raw(env, "imagesTs"), out_deeper, extra=["--save_probabilities"])
    predict_whole_stack(env, raw(env, "imagesTs"), out_chunks, extra=["--save_probabilities", "--chunk", "2"])
    assert cases(out) == cases(out_stock) == cases(raw(env, "labelsTs"))
    assert not os.path.exists(os.path.join(out, ".incomplete"))
    for case in cases(out):
        seg = array(out, case)
        img = sitk.ReadImage(os.path.join(raw(env, "imagesTs"), case.replace(".nii.gz", "_0000.nii.gz")))
        assert seg.shape == sitk.GetArrayFromImage(img).shape
        probs = np.load(os.path.join(out, case.replace(".nii.gz", ".npz")))["probabilities"]
        for other in (out_deeper, out_chunks):
            assert np.array_equal(array(other, case), seg)
            other_probs = np.load(os.path.join(other, case.replace(".nii.gz", ".npz")))["probabilities"]
            # logits are summed in half precision (as nnU-Net's predictor does): last-bit differences of
            # the convolutions on other batch sizes round differently; seen: 2 of 76800 values off by 3.4e-4
            np.testing.assert_allclose(other_probs, probs, atol=2e-3)
        # the same model through nnU-Net's stock slab predictor: close, not equal (slab ends see zeros there)
        ref = array(raw(env, "labelsTs"), case)
        assert dice(seg > 0, ref > 0, True) >= 0.75
        assert (seg == array(out_stock, case)).mean() >= 0.99


def test_killed_prediction_leaves_only_complete_files_and_continues(trained, tmp_path):
    env, _ = trained
    inp, out = tmp_path / "many", tmp_path / "out"
    inp.mkdir()
    for k in range(4):  # enough cases that the run is still busy when the first one is written
        for f in os.listdir(raw(env, "imagesTs")):
            shutil.copy(os.path.join(raw(env, "imagesTs"), f), inp / f"c{k}{f}")
    n_cases = len(os.listdir(inp))
    cmd = [os.path.join(BIN, "nnunet-distilldsm"), "predict", "-i", str(inp), "-o", str(out), "-d", "901", "-tr",
           TRAINER, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    staging = out / ".incomplete"
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not (staging.is_dir() and cases(staging)):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    assert cases(out) == []  # what was written before the kill is not where finished results go
    proc = predict_whole_stack(env, str(inp), str(out), extra=["--continue_prediction"])
    assert len(cases(out)) == n_cases and not staging.exists()
    proc = predict_whole_stack(env, str(inp), str(out), extra=["--continue_prediction"])
    assert "0 cases to predict" in proc.stdout


def test_whole_stack_prediction_of_a_stock_2d_model_names_the_command_to_use(stock_2d, tmp_path):
    env, _ = stock_2d
    out = tmp_path / "out"
    proc = predict_whole_stack(env, raw(env, "imagesTs"), str(out), trainer="nnUNetTrainer_tiny", check=False)
    assert proc.returncode != 0
    assert "needs a model trained with a slab trainer" in proc.stderr and "nnUNetv2_predict" in proc.stderr
    assert cases(out) == []


@pytest.mark.parametrize("folder_of,checkpoint_of,message", [
    (TRAINER, "nnUNetTrainer_tiny", "these weights do not fit"),  # SlabUNet.load_state_dict
    ("nnUNetTrainer_tiny", TRAINER, "mixes files of different trainings"),  # DistillDSMTrainer.build_network_architecture
])
def test_checkpoint_of_another_training_in_a_model_folder_is_refused_with_the_fix(trained, stock_2d, tmp_path,
                                                                                  folder_of, checkpoint_of, message):
    env, _ = stock_2d
    env2 = dict(env, nnUNet_results=str(tmp_path / "res"))
    shutil.copytree(results(env, folder_of), results(env2, folder_of))
    shutil.copy(os.path.join(results(env, checkpoint_of), "fold_0", "checkpoint_final.pth"),
                os.path.join(results(env2, folder_of), "fold_0", "checkpoint_final.pth"))
    out = tmp_path / "out"
    with_error = run(["nnUNetv2_predict", "-i", raw(env, "imagesTs"), "-o", str(out), "-d", "901", "-c", "2d", "-tr",
                      folder_of, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"], env2, check=False)
    assert with_error.returncode != 0
    assert message in with_error.stderr and "predict with" in with_error.stderr.lower()
    assert cases(out) == []
