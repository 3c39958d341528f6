"""Training seconds measured beside other work are left out of the tables, and the tables say so."""
import os
import subprocess
import time

from benchmarks import report
from benchmarks.budget_trainers import Model
from benchmarks.contention import ancestors, other_processes, snapshot
from benchmarks.run_store import run_file, write_json


def test_snapshot_sees_another_training_but_not_its_own_test_session():
    mine = ancestors(os.getpid())
    assert os.getpid() in mine and (os.getppid() in mine or os.getppid() == 1)  # 1: started detached, under init
    assert not any(int(p.split()[0]) in mine for p in other_processes())  # this session
    other = subprocess.Popen(["bash", "-c", "exec -a nnUNetv2_train sleep 30"])
    try:
        time.sleep(0.3)
        assert f"{other.pid} nnUNetv2_train 30" in snapshot()["other_processes"]
    finally:
        other.kill()
        other.wait()
    assert not any(p.startswith(f"{other.pid} ") for p in other_processes())


def test_contended_seconds_are_left_out_and_counted(tmp_path):
    cases = {"case_0": {"dice": {"a": 0.8}, "hd95": {"a": 1.0}}}
    for fold, (seconds, contended) in enumerate(((100.0, False), (900.0, True), (110.0, False))):
        write_json(run_file(str(tmp_path), "DatasetX", "p", "Distill DSM", fold, 0),
                   {"run": f"fold{fold}_seed0", "fold": fold, "seed": 0, "train_s": seconds, "iterations": 625,
                    "cases": cases, "contended": contended})
    for fold in range(3):
        write_json(run_file(str(tmp_path), "DatasetX", "p", "nnU-Net 2d", fold, 0),
                   {"run": f"fold{fold}_seed0", "fold": fold, "seed": 0, "train_s": 50.0, "iterations": 625,
                    "cases": cases, "contended": True})
    models = [Model("nnU-Net 2d", "nnUNetTrainer", "bench"), Model("Distill DSM", "DistillDSMTrainer", "bench")]
    rows = report.aggregate(str(tmp_path), "DatasetX", "p", models)
    two_d, dsm = rows
    assert dsm["runs"] == 3 and dsm["train_s_runs"] == 2 and dsm["train_s_mean"] == 105.0
    assert two_d["train_s_runs"] == 0
    table = open(report.write_tables(rows, str(tmp_path), "DatasetX", "p") + ".md").read()
    assert "| 105 (1 contended run(s) left out) |" in table and "| contended (all runs) |" in table
