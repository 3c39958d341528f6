"""`nnunet-distilldsm demo` runs nnU-Net's commands for both models and prints their Dice side by side."""
import os
import re

import pytest

from conftest import nnunet_env, run


@pytest.mark.slow
def test_demo_trains_both_models_for_the_same_wall_clock_and_prints_their_dice(tmp_path):
    env = nnunet_env(tmp_path)
    work = tmp_path / "demo"
    proc = run(["nnunet-distilldsm", "demo", "--train-seconds", "15", "--workdir", str(work)], env, timeout=1500)
    assert "15.0 s of wall clock each" in proc.stdout
    rows = {m.group(1): m.group(2).split()
            for m in re.finditer(r"^  (nnU-Net 2d|Distill DSM)\s+([0-9. ]+)$", proc.stdout, re.M)}
    assert set(rows) == {"nnU-Net 2d", "Distill DSM"}
    for values in rows.values():
        assert len(values) == 5  # ball, cylinder, mean Dice, iterations, wall seconds of training
        ball, cylinder, mean = (float(v) for v in values[:3])
        assert all(0 <= v <= 1 for v in (ball, cylinder, mean)) and abs(mean - (ball + cylinder) / 2) < 1e-3
        iterations, seconds = int(values[3]), float(values[4])
        assert iterations >= 25 and iterations % 25 == 0 and seconds > 0
    for trainer in ("nnUNetTrainer_wallclock", "DistillDSMTrainer_wallclock"):
        assert len(os.listdir(work / "predictions" / trainer)) >= 20  # every test case, plus nnU-Net's json files


def test_demo_refuses_train_seconds_with_an_iteration_budget(tmp_path):
    proc = run(["nnunet-distilldsm", "demo", "--budget", "tiny", "--train-seconds", "15", "--workdir",
                str(tmp_path / "demo")], nnunet_env(tmp_path), check=False)
    assert proc.returncode != 0 and "--train-seconds goes with --budget wallclock" in proc.stderr
    assert not os.path.exists(tmp_path / "demo")
