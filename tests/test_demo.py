"""`nnunet-distilldsm demo` runs nnU-Net's commands for both models and prints their Dice side by side."""
import os
import re

from conftest import nnunet_env, run


def test_demo_prints_both_models_dice(tmp_path):
    env = nnunet_env(tmp_path)
    work = tmp_path / "demo"
    proc = run(["nnunet-distilldsm", "demo", "--budget", "tiny", "--workdir", str(work)], env, timeout=1500)
    rows = {m.group(1): [float(v) for v in m.group(2).split()]
            for m in re.finditer(r"^  (nnU-Net 2d|Distill DSM)\s+([0-9. ]+)$", proc.stdout, re.M)}
    assert set(rows) == {"nnU-Net 2d", "Distill DSM"}
    for values in rows.values():
        assert len(values) == 3 and all(0 <= v <= 1 for v in values)  # ball, cylinder, mean
        assert abs(values[2] - (values[0] + values[1]) / 2) < 1e-3
    for trainer in ("nnUNetTrainer_tiny", "DistillDSMTrainer_tiny"):
        assert len(os.listdir(work / "predictions" / trainer)) >= 20  # every test case, plus nnU-Net's json files
