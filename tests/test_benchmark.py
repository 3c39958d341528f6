"""The benchmark's pieces on known inputs, and a tiny benchmark run through the command."""
import csv
import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import run
from nnunet_distilldsm.benchmarks.metrics import dice, flops_per_voxel, hd95
from nnunet_distilldsm.synthetic import make_case


def test_flops_of_a_known_convolution():
    conv = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
    assert flops_per_voxel(conv, (1, 2, 10, 12)) == 2 * 2 * 4 * 9  # multiply-adds of 8 weights x 9 taps


def test_hd95_and_dice_on_shifted_boxes():
    a = np.zeros((10, 30, 30), np.uint8)
    b = np.zeros_like(a)
    a[2:8, 5:20, 5:20] = 1
    b[2:8, 5:20, 8:23] = 1  # shifted by 3 voxels along x
    assert hd95(a, b, 1, (3.0, 1.0, 0.5)) == pytest.approx(1.5)  # 3 voxels of 0.5 mm
    assert hd95(a, b, 1, (3.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert dice(a, b, 1) == pytest.approx(2 * 6 * 15 * 12 / (2 * 6 * 15 * 15))
    assert math.isnan(dice(a, b, 2)) and math.isnan(hd95(a, b, 2, (1, 1, 1)))


def test_synthetic_objects_look_alike_in_single_slices():
    image, label = make_case(np.random.default_rng(1), n_objects=2)  # one ball, one cylinder
    assert set(np.unique(label)) == {0, 1, 2}
    areas = {k: [(label[z] == k).sum() for z in range(label.shape[0]) if (label[z] == k).any()] for k in (1, 2)}
    assert np.ptp(areas[1]) > 0.3 * max(areas[1])  # a ball's disks shrink towards its ends
    assert np.median(areas[2]) == max(areas[2])  # a cylinder's keep their area
    # same intensity: a single slice of either is a bright disk on noise
    assert abs(image[label == 1].mean() - image[label == 2].mean()) < 0.1 * image[label > 0].mean()
    assert image[label > 0].mean() > image[label == 0].mean() + image[label == 0].std()


@pytest.mark.slow
def test_tiny_benchmark_records_runs_aggregates_them_and_resumes(planned, tmp_path):
    env, _ = planned
    out = tmp_path / "bench"
    cmd = ["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "tiny", "--seeds", "0", "1", "--rounds", "2",
           "-o", str(out)]
    proc = run(cmd, env)
    assert "Distill DSM: 2 run(s)" in proc.stdout
    runs = out / "results" / "runs" / "Dataset901_DepthContext" / "tiny"
    for model in ("nnU-Net_2d", "Distill_DSM", "Distill_DSM_whole_stack", "Distill_DSM_from_2d"):
        for seed in (0, 1):
            record = json.loads((runs / model / f"fold0_seed{seed}.json").read_text())
            assert record["seed"] == seed and record["seeded"] and record["train_s"] > 0
            assert record["iterations"] in (4, 8)
            assert len(record["cases"]) == 3 and record["commit"]
            assert all(0 <= v <= 1 for case in record["cases"].values() for v in case["dice"].values() if v is not None)
            if seed == 1:  # trained by this invocation (seed 0's models may be other tests'): its commit and clock
                assert record["trained_commit"] == record["commit"] and record["contended"] is False
                assert set(record["contention"]) == {"start", "end"}
    # the fine-tune started from the same run's 2d model, and its cost includes that model's training
    tuned = json.loads((runs / "Distill_DSM_from_2d" / "fold0_seed1.json").read_text())
    two_d = json.loads((runs / "nnU-Net_2d" / "fold0_seed1.json").read_text())
    assert tuned["started_from"] == "nnUNetTrainer_tiny" and tuned["start_train_s"] == two_d["train_s"]
    assert tuned["iterations"] == 4 and tuned["start_iterations"] == 8
    # seeds 0 and 1 are different trainings: their predictions differ somewhere
    dsm = [json.loads((runs / "Distill_DSM" / f"fold0_seed{s}.json").read_text())["cases"] for s in (0, 1)]
    assert dsm[0] != dsm[1]
    rows = list(csv.DictReader(open(out / "results" / "Dataset901_DepthContext_tiny.csv")))
    assert [r["model"] for r in rows] == ["nnU-Net 2d", "Distill DSM", "Distill DSM, whole stack",
                                          "Distill DSM from 2d"]
    for r in rows:
        assert r["runs"] == "2" and 0 <= float(r["dice_mean"]) <= 1 and float(r["train_s_total"]) > 0
        assert int(r["params"]) > 0 and float(r["flops_per_voxel"]) > 0 and float(r["infer_s_per_voxel"]) > 0
        assert float(r["peak_train_mem_mb"]) > 0
    assert float(rows[0]["infer_s_per_voxel_vs_2d"]) == 1.0 and float(rows[0]["dice_vs_2d"]) == 0
    assert float(rows[1]["dice_vs_2d_lo"]) <= float(rows[1]["dice_vs_2d"]) <= float(rows[1]["dice_vs_2d_hi"])
    assert rows[1]["verdict_vs_2d"] in ("better", "worse", "not distinguishable")
    assert int(rows[1]["params"]) > int(rows[0]["params"])  # Distill DSM adds the modules' parameters
    assert rows[2]["params"] == rows[1]["params"]  # the same model, predicted whole-stack
    assert float(rows[3]["train_s_with_start_mean"]) > float(rows[3]["train_s_mean"])
    assert os.path.getsize(out / "results" / "Dataset901_DepthContext_tiny.png") > 10_000
    assert "| Distill DSM |" in (out / "results" / "Dataset901_DepthContext_tiny.md").read_text()

    # --no-train re-aggregates only: same table, nothing trained or predicted
    table = (out / "results" / "Dataset901_DepthContext_tiny.csv").read_text()
    proc = run([*cmd, "--no-train"], env)
    assert ": train " not in proc.stdout
    assert ": predict " not in proc.stdout
    assert (out / "results" / "Dataset901_DepthContext_tiny.csv").read_text() == table

    # a missing run file is redone alone, from the trained model already there
    kept = (runs / "nnU-Net_2d" / "fold0_seed0.json").stat().st_mtime_ns
    (runs / "Distill_DSM" / "fold0_seed1.json").unlink()
    proc = run(cmd, env)
    assert proc.stdout.count(": predict ") == 1 and ": train " not in proc.stdout
    assert (runs / "Distill_DSM" / "fold0_seed1.json").is_file()
    assert (runs / "nnU-Net_2d" / "fold0_seed0.json").stat().st_mtime_ns == kept


@pytest.mark.slow
def test_a_model_folder_of_another_recipe_is_refused_not_reused(planned, tmp_path):
    """A trainer whose recipe changed (here: the folder holds a network with one module per block;
    DistillDSMTrainer_tiny builds one after every conv) must not predict the old models under
    its name."""
    from nnunet_distilldsm.trainers import DistillDSMTrainer_perBlock
    env, _ = planned
    env = dict(env, nnUNet_results=str(tmp_path / "res"))
    plans = json.load(open(os.path.join(env["nnUNet_preprocessed"], "Dataset901_DepthContext", "nnUNetPlans.json")))
    folder = tmp_path / "res" / "Dataset901_DepthContext" / "DistillDSMTrainer_tiny__nnUNetPlans__2d"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(DistillDSMTrainer_perBlock.slab_plans(plans, "2d")))
    before = (folder / "plans.json").read_text()
    out = tmp_path / "bench"
    proc = run(["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "tiny", "-o", str(out)], env, check=False)
    assert proc.returncode != 0
    assert "holds models of a different network than DistillDSMTrainer_tiny builds now (placement: 'block' there, " \
           "'conv' now)" in proc.stderr + proc.stdout
    runs = out / "results" / "runs" / "Dataset901_DepthContext" / "tiny"
    assert (runs / "nnU-Net_2d" / "fold0_seed0.json").is_file()  # the models before it were recorded
    assert not (runs / "Distill_DSM").exists() and (folder / "plans.json").read_text() == before


@pytest.mark.slow
def test_a_calibration_of_another_recipe_is_refused_not_reused(planned, tmp_path):
    """Equal-time's epochs come from a calibration training; one of the old recipe must not set the new one's."""
    from nnunet_distilldsm.trainers import DistillDSMTrainer_perBlock
    env, _ = planned
    env = dict(env, nnUNet_results=str(tmp_path / "res"))
    plans = json.load(open(os.path.join(env["nnUNet_preprocessed"], "Dataset901_DepthContext", "nnUNetPlans.json")))
    folder = (tmp_path / "res" / "distilldsm_runs" / "calibration" / "Dataset901_DepthContext"
              / "DistillDSMTrainer_calib__nnUNetPlans__2d")
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(DistillDSMTrainer_perBlock.slab_plans(plans, "2d")))
    out = tmp_path / "bench"
    calibration = out / "results" / "runs" / "Dataset901_DepthContext" / "equal-time-tiny" / "calibration.json"
    calibration.parent.mkdir(parents=True)
    calibration.write_text(json.dumps({"nnUNetTrainer_timed__2d": {"epoch_s": 1.0}}))  # nnU-Net 2d: calibrated
    proc = run(["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "equal-time-tiny", "--train-minutes", "0.1",
                "-o", str(out)], env, check=False)
    assert proc.returncode != 0
    assert "holds models of a different network than DistillDSMTrainer_calib builds now (placement: 'block' there, " \
           "'conv' now)" in proc.stderr + proc.stdout
    assert set(json.loads(calibration.read_text())) == {"nnUNetTrainer_timed__2d"}  # no epochs from the old recipe


def test_seed_variable_seeds_torch_numpy_and_random(monkeypatch):
    import random

    from nnunet_distilldsm.benchmarks.budget_trainers import SEED_VARIABLE, seed_from_environment
    monkeypatch.setenv(SEED_VARIABLE, "7")
    draws = []
    for _ in range(2):
        assert seed_from_environment() == 7
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()))
    assert draws[0] == draws[1]
    monkeypatch.delenv(SEED_VARIABLE)
    assert seed_from_environment() is None


@pytest.mark.slow
def test_timed_trainer_without_epochs_says_what_to_set(planned, monkeypatch):
    env, _ = planned
    env = {k: v for k, v in env.items() if k != "NNUNET_DISTILLDSM_EPOCHS"}
    proc = run(["nnUNetv2_train", "901", "2d", "0", "-tr", "DistillDSMTrainer_timed", "-device", "cpu"], env,
               check=False)
    assert proc.returncode != 0 and "NNUNET_DISTILLDSM_EPOCHS" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_equal_wallclock_trains_each_model_for_the_budget_by_its_own_clock(planned, tmp_path):
    env, _ = planned
    out = tmp_path / "bench"
    run(["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "equal-wallclock-tiny", "--train-minutes", "0.75",
         "--rounds", "1", "-o", str(out)], env, timeout=1800)
    folder = out / "results" / "runs" / "Dataset901_DepthContext" / "equal-wallclock-tiny"
    assert not (folder / "calibration.json").exists()
    for model in ("nnU-Net_2d", "Distill_DSM"):
        record = json.loads((folder / model / "fold0_seed0.json").read_text())
        assert record["budget_s"] == 45 and record["epochs"] >= 2 and record["iterations"] == 25 * record["epochs"]
        epoch_wall = record["wall_s"] / record["epochs"]  # an upper bound, with the gaps between epochs
        assert abs(record["wall_s"] - 45) <= 1.5 * epoch_wall, record
        assert record["train_s"] <= record["wall_s"]
    table = out / "results" / "Dataset901_DepthContext_equal-wallclock-tiny.csv"
    rows = {r["model"]: r for r in csv.DictReader(open(table))}
    assert set(rows) == {"nnU-Net 2d", "Distill DSM"} and float(rows["Distill DSM"]["wall_s_mean"]) > 0


@pytest.mark.slow
def test_equal_time_gives_each_model_the_epochs_its_calibration_fits_in_the_budget(planned, tmp_path):
    env, _ = planned
    out = tmp_path / "bench"
    proc = run(["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "equal-time-tiny", "--train-minutes", "0.5",
                "--rounds", "1", "-o", str(out)], env, timeout=1800)
    folder = out / "results" / "runs" / "Dataset901_DepthContext" / "equal-time-tiny"
    calibration = json.loads((folder / "calibration.json").read_text())
    assert set(calibration) == {"nnUNetTrainer_timed__2d", "DistillDSMTrainer_timed__2d",
                                "DistillDSMTrainer_from2d_timed__2d", "nnUNetTrainer_timedStart__2d"}
    for model, key in (("nnU-Net_2d", "nnUNetTrainer_timed__2d"), ("Distill_DSM", "DistillDSMTrainer_timed__2d")):
        record = json.loads((folder / model / "fold0_seed0.json").read_text())
        epoch_s = calibration[key]["epoch_s"]
        assert epoch_s > 0 and record["budget_s"] == 30
        assert record["epochs"] == max(1, round(30 / epoch_s)) and record["iterations"] == 25 * record["epochs"]
        assert record["train_s"] > 0
    # from 2d: its 2d model's training counts towards the budget, 80% of it, the fine-tune 20%
    record = json.loads((folder / "Distill_DSM_from_2d" / "fold0_seed0.json").read_text())
    assert record["started_from"] == "nnUNetTrainer_timedStart"
    assert calibration["nnUNetTrainer_timedStart__2d"]["epoch_s"] == calibration["nnUNetTrainer_timed__2d"]["epoch_s"]
    assert record["epochs"] == max(1, round(0.2 * 30 / calibration["DistillDSMTrainer_timed__2d"]["epoch_s"]))
    start_epoch_s = calibration["nnUNetTrainer_timed__2d"]["epoch_s"]
    assert record["start_iterations"] == 25 * max(1, round(0.8 * 30 / start_epoch_s))
    assert record["start_train_s"] > 0
    table = (out / "results" / "Dataset901_DepthContext_equal-time-tiny.md").read_text()
    assert "Budget: 0.5 training minutes" in table
    assert os.path.getsize(out / "results" / "Dataset901_DepthContext_tradeoff.png") > 10_000
    assert "Distill DSM: 1 run(s)" in proc.stdout
