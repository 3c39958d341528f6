"""`python -m benchmarks demo` runs nnU-Net's commands for both models and prints their Dice side by side."""
import os
import re
import shutil

import pytest

from conftest import DS, nnunet_env, run

BUDGET_S = 5.0  # seconds of training per model: at least one epoch of 25 iterations either way


@pytest.mark.slow
def test_demo_trains_both_models_for_the_same_wall_clock_and_prints_their_dice(planned, tmp_path):
    """On the session's planned Dataset901 (10 training, 3 test cases): the demo writes and plans its dataset
    only when its work folder lacks them, as on a second run."""
    env = nnunet_env(tmp_path)
    work = tmp_path / "demo"
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed")):
        shutil.copytree(os.path.join(planned[0][var], DS), work / sub / DS)
    proc = run(["benchmarks", "demo", "--train-seconds", str(BUDGET_S), "--workdir", str(work)], env, timeout=1500)
    assert f"{BUDGET_S:.1f} s of wall clock each" in proc.stdout and "nnUNetv2_plan_and_preprocess" not in proc.stdout
    assert f"Dice on {DS}'s 3 test cases" in proc.stdout
    rows = {m.group(1): m.group(2).split()
            for m in re.finditer(r"^  (nnU-Net 2d|Distill DSM)\s+([0-9. ]+)$", proc.stdout, re.M)}
    assert set(rows) == {"nnU-Net 2d", "Distill DSM"}
    for values in rows.values():
        assert len(values) == 5  # ball, cylinder, mean Dice, iterations, wall seconds of training
        ball, cylinder, mean = (float(v) for v in values[:3])
        assert all(0 <= v <= 1 for v in (ball, cylinder, mean)) and abs(mean - (ball + cylinder) / 2) < 1e-3
        iterations, seconds = int(values[3]), float(values[4])
        assert iterations >= 25 and iterations % 25 == 0 and seconds > 0
        # the one real wall-clock training of the suite (test_wall_clock.py uses a fake clock): it stops after
        # the epoch that ends nearest the budget, so within an epoch of it
        assert abs(seconds - BUDGET_S) <= seconds / (iterations // 25), (seconds, iterations)
    for trainer in ("nnUNetTrainer_wallclock", "DistillDSMTrainer_wallclock"):
        predicted = [f for f in os.listdir(work / "predictions" / trainer) if f.endswith(".nii.gz")]
        assert sorted(predicted) == sorted(os.listdir(work / "raw" / DS / "labelsTs"))  # every test case
        fold = work / "results" / DS / f"{trainer}__nnUNetPlans__2d" / "fold_0"
        assert (fold / "checkpoint_final.pth").is_file() and not (fold / "validation").exists()  # not read


def test_demo_refuses_train_seconds_with_an_iteration_budget(tmp_path):
    proc = run(["benchmarks", "demo", "--budget", "tiny", "--train-seconds", "15", "--workdir",
                str(tmp_path / "demo")], nnunet_env(tmp_path), check=False)
    assert proc.returncode != 0 and "--train-seconds goes with --budget wallclock" in proc.stderr
    assert not os.path.exists(tmp_path / "demo")
