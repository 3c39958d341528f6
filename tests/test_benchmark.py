"""The benchmark's pieces on known inputs, and a tiny benchmark run through the command."""
import csv
import json
import math
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from benchmarks.metrics import dice, flops_per_voxel, hd95
from benchmarks.synthetic import make_case
from conftest import run
from helpers import load_plans, nnunet_trainer, use_nnunet_folders


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
def test_tiny_benchmark_records_runs_aggregates_them_and_resumes(planned, stock_2d, tmp_path):
    """The benchmark end to end. Seed 0's nnU-Net 2d model is the session's stock_2d (nnUNetTrainer_tiny, fold 0,
    in the shared nnUNet_results), which the benchmark reuses as it would a user's; seed 1 trains everything."""
    env, _ = planned
    out = tmp_path / "bench"
    cmd = ["benchmarks", "benchmark", "-d", "901", "--profile", "tiny", "--seeds", "0", "1", "--rounds", "1",
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
    assert tuned["iterations"] == 4 and tuned["start_iterations"] == 8 and tuned["start_contended"] is False
    # the benchmark scores its own cases: its trainings skip nnU-Net's final validation, and say so in their log
    seed1 = os.path.join(env["nnUNet_results"], "distilldsm_runs", "seed1", "Dataset901_DepthContext")
    assert len(os.listdir(seed1)) == 3  # nnU-Net 2d, Distill DSM, the fine-tune
    for model in os.listdir(seed1):
        fold = os.path.join(seed1, model, "fold_0")
        assert os.path.isfile(os.path.join(fold, "checkpoint_final.pth"))
        assert not os.path.exists(os.path.join(fold, "validation"))
        logs = [open(os.path.join(fold, f)).read() for f in os.listdir(fold) if f.startswith("training_log")]
        assert any("final validation skipped" in log for log in logs), model
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


def in_process_study_of(monkeypatch, env, dataset, profile, out, train_minutes=6.0):
    """The benchmark's Study, built in this process with nnU-Net's folders from `env`."""
    from benchmarks.benchmark import Study
    use_nnunet_folders(monkeypatch, env)  # Study adds its trainer folders to os.environ: restored after the test
    return Study(dataset, profile, "cpu", str(out), train_minutes)


def in_process_study(monkeypatch, env, profile, out, train_minutes=6.0):
    """The benchmark's Study for Dataset901."""
    return in_process_study_of(monkeypatch, env, "901", profile, out, train_minutes)


def dataset_json_only(tmp_path, labels, regions=None) -> dict:
    """nnU-Net's folders with Dataset905's raw folder holding only a dataset.json: all a Study reads at start."""
    raw = tmp_path / "raw" / "Dataset905_Labels"
    raw.mkdir(parents=True)
    dataset = {"channel_names": {"0": "MR"}, "labels": labels, "numTraining": 2, "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(dict(dataset, regions_class_order=regions) if regions else dataset))
    return {"nnUNet_raw": str(tmp_path / "raw"), "nnUNet_preprocessed": str(tmp_path / "pre"),
            "nnUNet_results": str(tmp_path / "res")}


@pytest.mark.parametrize("labels,regions,kind", [
    ({"background": 0, "whole": [1, 2], "core": 2}, [1, 2], "regions"),
    ({"background": 0, "object": 1, "ignore": 2}, None, "an ignore label"),
])
def test_a_dataset_the_benchmark_would_score_wrongly_is_refused_before_anything_runs(labels, regions, kind, tmp_path,
                                                                                    monkeypatch):
    env = dataset_json_only(tmp_path, labels, regions)
    with pytest.raises(SystemExit, match=f"Dataset905_Labels has {kind}, and the benchmark scores plain integer "
                                         f"labels only .* score with nnUNetv2_evaluate_folder"):
        in_process_study_of(monkeypatch, env, "905", "tiny", tmp_path / "bench")


def test_a_label_written_as_a_one_entry_list_is_scored_as_nnunet_reads_it(tmp_path, monkeypatch):
    env = dataset_json_only(tmp_path, {"background": 0, "object": [1], "edge": 2})
    assert in_process_study_of(monkeypatch, env, "905", "tiny", tmp_path / "bench").labels == {1: "object",
                                                                                              2: "edge"}


def test_a_model_folder_of_another_recipe_is_refused_not_reused(planned, tmp_path, monkeypatch):
    """A trainer whose recipe changed (here: the folder holds a network with one module per block;
    DistillDSMTrainer_tiny builds one after every conv) must not predict the old models under
    its name, nor train over them."""
    from nnunet_distilldsm.trainers import DistillDSMTrainer_perBlock
    env = dict(planned[0], nnUNet_results=str(tmp_path / "res"))
    plans = load_plans(env)
    folder = tmp_path / "res" / "Dataset901_DepthContext" / "DistillDSMTrainer_tiny__nnUNetPlans__2d"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(DistillDSMTrainer_perBlock.slab_plans(plans, "2d")))
    before = (folder / "plans.json").read_text()
    study = in_process_study(monkeypatch, env, "tiny", tmp_path / "bench")
    with pytest.raises(SystemExit, match=r"DistillDSMTrainer_tiny__nnUNetPlans__2d holds models of a different "
                                         r"network than DistillDSMTrainer_tiny builds now \(placement: 'block' there, "
                                         r"'conv' now\)"):
        study.train_if_missing("Distill DSM", "DistillDSMTrainer_tiny", "2d", 0, 0)
    assert sorted(os.listdir(folder)) == ["plans.json"] and (folder / "plans.json").read_text() == before


def test_a_calibration_of_another_recipe_is_refused_not_reused(planned, tmp_path, monkeypatch):
    """Equal-time's epochs come from a calibration training; one of the old recipe must not set the new one's."""
    from nnunet_distilldsm.trainers import DistillDSMTrainer_perBlock
    env = dict(planned[0], nnUNet_results=str(tmp_path / "res"))
    plans = load_plans(env)
    folder = (tmp_path / "res" / "distilldsm_runs" / "calibration" / "Dataset901_DepthContext"
              / "DistillDSMTrainer_calib__nnUNetPlans__2d")
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(DistillDSMTrainer_perBlock.slab_plans(plans, "2d")))
    out = tmp_path / "bench"
    calibration = out / "results" / "runs" / "Dataset901_DepthContext" / "equal-time-tiny" / "calibration.json"
    calibration.parent.mkdir(parents=True)
    calibration.write_text(json.dumps({"nnUNetTrainer_timed__2d": {"epoch_s": 1.0}}))  # nnU-Net 2d: calibrated
    study = in_process_study(monkeypatch, env, "equal-time-tiny", out, train_minutes=0.1)
    with pytest.raises(SystemExit, match=r"holds models of a different network than DistillDSMTrainer_calib builds "
                                         r"now \(placement: 'block' there, 'conv' now\)"):
        study.calibration()
    assert set(json.loads(calibration.read_text())) == {"nnUNetTrainer_timed__2d"}  # no epochs from the old recipe
    assert sorted(os.listdir(folder)) == ["plans.json"]


def test_seed_variable_seeds_torch_numpy_and_random(monkeypatch):
    import random

    from benchmarks.budget_trainers import SEED_VARIABLE, seed_from_environment
    monkeypatch.setenv(SEED_VARIABLE, "7")
    draws = []
    for _ in range(2):
        assert seed_from_environment() == 7
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()))
    assert draws[0] == draws[1]
    monkeypatch.delenv(SEED_VARIABLE)
    assert seed_from_environment() is None


@pytest.mark.parametrize("epochs", [None, "0", "two"])
def test_timed_trainer_without_epochs_says_what_to_set(planned, monkeypatch, tmp_path, epochs):
    from benchmarks.budget_trainers import EPOCHS_VARIABLE
    if epochs is None:
        monkeypatch.delenv(EPOCHS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(EPOCHS_VARIABLE, epochs)
    with pytest.raises(RuntimeError, match=f"DistillDSMTrainer_timed trains for {EPOCHS_VARIABLE} epochs .* got "
                                           f"{epochs or ''!r}: set it"):
        nnunet_trainer(monkeypatch, dict(planned[0], nnUNet_results=str(tmp_path / "res")), 901, "2d",
                       "DistillDSMTrainer_timed")


def test_timed_trainer_trains_the_epochs_it_is_given(planned, monkeypatch, tmp_path):
    from benchmarks.budget_trainers import EPOCHS_VARIABLE
    monkeypatch.setenv(EPOCHS_VARIABLE, "7")
    trainer = nnunet_trainer(monkeypatch, dict(planned[0], nnUNet_results=str(tmp_path / "res")), 901, "2d",
                             "DistillDSMTrainer_timed")
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (7, 25, 5)


def test_equal_time_gives_each_model_the_epochs_its_calibration_fits_in_the_budget(planned, tmp_path, monkeypatch,
                                                                                    capsys):
    """Equal-time's arithmetic on a calibration.json with three trainers' seconds per epoch and, for the fourth,
    a calibration model kept from an earlier invocation (constructed: its plans and a checkpoint with nnU-Net's
    epoch timestamps): the epochs each training gets, the from-2d run's 80/20 split of the budget, and where and
    with what each run trains. No calibration training runs here (docs/install.md names the line this leaves
    untested)."""
    from benchmarks.budget_trainers import EPOCHS_VARIABLE, SEED_VARIABLE
    from benchmarks.wall_clock import SECONDS_VARIABLE
    env = dict(planned[0], nnUNet_results=str(tmp_path / "res"))
    out = tmp_path / "bench"
    calibration = out / "results" / "runs" / "Dataset901_DepthContext" / "equal-time-tiny" / "calibration.json"
    calibration.parent.mkdir(parents=True)
    epoch_s = {"nnUNetTrainer_timed__2d": 2.0, "DistillDSMTrainer_timed__2d": 3.0,
               "DistillDSMTrainer_from2d_timed__2d": 3.0}
    calibration.write_text(json.dumps({k: {"epoch_s": v} for k, v in epoch_s.items()}))
    # nnUNetTrainer_timedStart's calibration (nnUNetTrainer's network), kept: 2 epochs, the last of 2.5 s
    kept = tmp_path / "res" / "distilldsm_runs" / "calibration" / "Dataset901_DepthContext" / \
        "nnUNetTrainer_calib__nnUNetPlans__2d"
    (kept / "fold_0").mkdir(parents=True)
    (kept / "plans.json").write_text(json.dumps(load_plans(env)))
    torch.save({"trainer_name": "nnUNetTrainer_calib", "logging": {"epoch_start_timestamps": [0.0, 10.0],
                                                                   "epoch_end_timestamps": [9.0, 12.5]}},
               kept / "fold_0" / "checkpoint_final.pth")
    study = in_process_study(monkeypatch, env, "equal-time-tiny", out, train_minutes=0.5)
    epochs = {k: v["epochs"] for k, v in study.calibration().items()}
    assert epochs == {"nnUNetTrainer_timed__2d": 15, "DistillDSMTrainer_timed__2d": 10,  # 30 s / epoch_s
                      # the 2d model a fine-tune starts from: 80% of 30 s, at the kept calibration's last epoch
                      "nnUNetTrainer_timedStart__2d": 10,  # round(24 s / 2.5 s)
                      "DistillDSMTrainer_from2d_timed__2d": 2}  # its fine-tune: 20%
    written = json.loads(calibration.read_text())
    assert {k: v["epoch_s"] for k, v in written.items()} == {**epoch_s, "nnUNetTrainer_timedStart__2d": 2.5}
    assert written["nnUNetTrainer_timedStart__2d"]["commit"] and "calibrate" not in capsys.readouterr().out
    run_env = study.environment(1, epochs=12)
    assert run_env[EPOCHS_VARIABLE] == "12" and run_env[SEED_VARIABLE] == "1" and SECONDS_VARIABLE not in run_env
    # an equal-time budget's models never share a folder with another budget's, or with seed 0's ordinary models
    assert study.results_root(0) == os.path.join(env["nnUNet_results"], "distilldsm_runs", "seed0_equal-time-30s")
    assert run_env["nnUNet_results"] == os.path.join(env["nnUNet_results"], "distilldsm_runs", "seed1_equal-time-30s")


def test_equal_wallclock_gives_each_training_the_budget_in_seconds(planned, tmp_path, monkeypatch):
    """Each equal-wallclock training is told the budget (the `_wallclock` trainers stop by their own clock:
    test_wall_clock.py) and trains in a folder of its own budget; no calibration is needed."""
    from benchmarks.budget_trainers import EPOCHS_VARIABLE
    from benchmarks.wall_clock import SECONDS_VARIABLE
    env = dict(planned[0], nnUNet_results=str(tmp_path / "res"))
    study = in_process_study(monkeypatch, env, "equal-wallclock-tiny", tmp_path / "bench", train_minutes=0.75)
    assert [m.trainer for m in study.models] == ["nnUNetTrainer_wallclock", "DistillDSMTrainer_wallclock"]
    run_env = study.environment(0)
    assert float(run_env[SECONDS_VARIABLE]) == 45 and EPOCHS_VARIABLE not in run_env
    assert run_env["nnUNet_results"] == os.path.join(env["nnUNet_results"], "distilldsm_runs", "seed0_wallclock-45s")
    # a second budget in the same output folder is refused before anything trains
    run_file = tmp_path / "bench" / "results" / "runs" / "Dataset901_DepthContext" / "equal-wallclock-tiny" / "m"
    run_file.mkdir(parents=True)
    (run_file / "fold0_seed0.json").write_text(json.dumps({"budget_s": 45.0}))
    with pytest.raises(SystemExit, match="trained with other budgets .* than this invocation's 1: pass "
                                         "--train-minutes 0.75 to add to that study"):
        in_process_study(monkeypatch, env, "equal-wallclock-tiny", tmp_path / "bench", train_minutes=1)


def test_a_fine_tunes_cost_with_its_start_leaves_out_runs_whose_start_was_contended():
    """Seconds measured beside other jobs are not a cost: a fine-tune's own seconds count where its own training
    was alone, its seconds with the 2d model it started from only where that training was alone too."""
    from benchmarks.report import model_row, train_s_text

    def run_file(run, train_s, start_train_s, start_contended=False, contended=False):
        cases = {f"c{i}": {"dice": {"1": 0.5 + 0.01 * i}, "hd95": {"1": 1.0}} for i in range(4)}
        return {"run": run, "train_s": train_s, "iterations": 4, "cases": cases, "contended": contended,
                "started_from": "nnUNetTrainer_tiny", "start_train_s": start_train_s,
                "start_contended": start_contended}

    runs = [run_file("fold0_seed0", 10, 700, start_contended=True), run_file("fold1_seed0", 12, 100),
            run_file("fold2_seed0", 14, 120), run_file("fold3_seed0", 99, 110, contended=True)]
    row = model_row("from 2d", "DistillDSMTrainer_from2d_tiny", "2d", runs, {}, {})
    assert row["train_s_runs"] == 3 and row["train_s_mean"] == 12  # fold 3's own training was contended
    assert row["train_s_with_start_runs"] == 2 and row["train_s_with_start_mean"] == (112 + 134) / 2
    assert train_s_text(row) == "12 (with its start: 123; 1 run(s) with a contended start left out) " \
                                "(1 contended run(s) left out)"
    no_start = model_row("from 2d", "DistillDSMTrainer_from2d_tiny", "2d", runs[:1], {}, {})
    assert math.isnan(no_start["train_s_with_start_mean"]) and "with its start: n/a" in train_s_text(no_start)
    plain = model_row("2d", "nnUNetTrainer_tiny", "2d", [{k: v for k, v in runs[1].items() if "start" not in k}],
                      {}, {})
    assert train_s_text(plain) == "12"


@pytest.mark.slow
def test_test_set_scored_by_every_fold_and_their_ensemble(planned, tmp_path):
    """--test-images/--test-labels: each trained fold's model and the folds' ensemble predict a labelled folder of
    extra cases through nnUNetv2_predict (nnunet-distilldsm predict for the whole-stack row) and are scored by
    nnUNetv2_evaluate_folder's per-case metric. The extra cases here: two of the dataset's test cases, a split of
    our own."""
    env, _ = planned
    raw = os.path.join(env["nnUNet_raw"], "Dataset901_DepthContext")
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    cases = sorted(f[:-len(".nii.gz")] for f in os.listdir(os.path.join(raw, "labelsTs")))[:2]
    for c in cases:
        shutil.copy(os.path.join(raw, "imagesTs", f"{c}_0000.nii.gz"), images)
        shutil.copy(os.path.join(raw, "labelsTs", f"{c}.nii.gz"), labels)
    out = tmp_path / "bench"
    cmd = ["benchmarks", "benchmark", "-d", "901", "--profile", "tiny-test-set", "-f", "0", "1", "--rounds", "1",
           "-o", str(out), "--test-images", str(images), "--test-labels", str(labels)]
    proc = run(cmd, env)
    test_runs = out / "results" / "runs" / "Dataset901_DepthContext" / "tiny-test-set-test"
    models = ("nnU-Net_2d", "Distill_DSM", "Distill_DSM_whole_stack")
    for model in models:
        for fold in (0, 1):
            record = json.loads((test_runs / model / f"fold{fold}_seed0.json").read_text())
            assert record["fold"] == fold and sorted(record["cases"]) == cases and record["iterations"] in (4, 8)
            assert all(0 <= v <= 1 for c in record["cases"].values() for v in c["dice"].values() if v is not None)
        ensemble = json.loads((test_runs / model / "ensemble_seed0.json").read_text())
        assert ensemble["folds"] == [0, 1] and sorted(ensemble["cases"]) == cases
    # the Dice kept is nnU-Net's, and it is the Dice of the files nnUNetv2_predict wrote
    work = out / "work" / "Dataset901_DepthContext" / "tiny-test-set-test"
    pred = work / "Distill_DSM" / "fold1_seed0" / f"{cases[0]}.nii.gz"
    record = json.loads((test_runs / "Distill_DSM" / "fold1_seed0.json").read_text())
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(labels / f"{cases[0]}.nii.gz")))
    ours = dice(sitk.GetArrayFromImage(sitk.ReadImage(str(pred))), ref, 1)
    assert record["cases"][cases[0]]["dice"]["ball"] == pytest.approx(ours, abs=1e-6, nan_ok=True)
    # every fold predicts the same cases: the table pairs models by run and case
    rows = list(csv.DictReader(open(out / "results" / "Dataset901_DepthContext_tiny-test-set-test.csv")))
    assert [r["model"] for r in rows] == ["nnU-Net 2d", "Distill DSM", "Distill DSM, whole stack"]
    assert all(r["runs"] == "2" for r in rows) and rows[1]["verdict_vs_2d"] in ("better", "worse",
                                                                                 "not distinguishable")
    table = (out / "results" / "Dataset901_DepthContext_tiny-test-set-test.md").read_text()
    assert "Ensembles of the folds' models" in table
    # scored once: a second invocation predicts nothing
    proc = run([*cmd, "--no-train"], env)
    assert "predict the test set" not in proc.stdout
    # a test case without a label: a clear error before anything is predicted
    shutil.copy(images / f"{cases[0]}_0000.nii.gz", images / "extra_0000.nii.gz")
    proc = run([*cmd, "--no-train"], env, check=False)
    assert proc.returncode != 0 and "give a label for every test case" in proc.stderr
