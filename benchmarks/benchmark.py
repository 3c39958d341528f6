"""`python -m benchmarks benchmark`: Distill DSM against stock nnU-Net 2d and 3d_fullres, side by side.

A benchmark is a set of runs: independent trainings of every model of a profile, one per fold
(-f) and seed (--seeds). Each finished run writes a file of per-case Dice and HD95 and training
cost (run_store.py); the tables aggregate every run file present, with paired confidence
intervals against nnU-Net 2d and 3d_fullres (paired_stats.py). An invocation trains and predicts
only the runs whose file is missing, so a study can be split over invocations and machines.

Profiles (docs/benchmark.md): `cpu-small` (every model 625 iterations), `equal-time` (every
model the same training seconds: its epochs follow from its own seconds per epoch, measured by
a short calibration training in the same study), `equal-wallclock` (every model trains until its
own clock has spent the same wall-clock seconds: wall_clock.py), `channels-ablation`, `slab-recipe` (and
`slab-recipe-per-conv`), `module-recipe` (and `equal-wallclock-module-recipe`), `from-2d-start`, `slab-sweep`, `full`
(nnU-Net's 1000 epochs), `tiny`, `equal-time-tiny`, `equal-wallclock-tiny` and `tiny-test-set` (tests).
Costs (parameters, FLOPs, inference seconds per voxel with the models taking turns for
--rounds rounds, training step time and memory) are measured once per profile, on the first
run's models, and kept beside the runs.
"""
import argparse
import os
import time
from typing import Dict, List, Optional

import torch

from benchmarks import contention, say
from benchmarks.budget_trainers import Model, trainer_name
from benchmarks.cases import benchmark_cases, evaluate, load_predictor, predict_timed
from benchmarks.costs import measure_costs_if_missing
from benchmarks.cpu_planner import CPU_PLANS, plan_and_preprocess_cpu
from benchmarks.metrics import MissingBenchmarkDependency, require_benchmark_dependencies
from benchmarks.nnunet_commands import is_preprocessed, nnunet_environment, run_nnunet
from benchmarks.profiles import (
    BUDGET_SHARE,
    DEFAULT_TRAIN_MINUTES,
    KEEPS_SEG_LAYERS,
    PROFILE_PLANS,
    PROFILES,
    STARTS_FROM,
)
from benchmarks.report import report_study
from benchmarks.run_store import (
    check_budget,
    profile_folder,
    read_json,
    run_file,
    run_id,
    slug,
    source_commit,
    write_json,
)
from benchmarks.training_records import TRAINED_BY, changed_architecture, trained_by, training_record


def model_identifier(trainer: str, config: str, plans: str = "nnUNetPlans") -> str:
    """nnU-Net's name of a model folder."""
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
    return convert_trainer_plans_config_to_identifier(trainer, plans, config)



def dataset_folder(root: str, dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    return os.path.join(root, maybe_convert_to_dataset_name(dataset))



def check_plain_labels(name: str, dataset_json: dict) -> None:
    """SystemExit for regions or an ignore label: the benchmark scores each integer label on its own, all voxels
    counted, so it would score such a dataset wrongly (regions: not at all)."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    labels = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    if labels.has_regions or labels.has_ignore_label:
        raise SystemExit(f"benchmark: {name} has {'regions' if labels.has_regions else 'an ignore label'}, and the "
                         f"benchmark scores plain integer labels only (the Dice and HD95 of each, every voxel "
                         f"counted). The plugin trains and predicts it: use nnUNetv2_train, nnUNetv2_predict (or "
                         f"nnunet-distilldsm predict) and score with nnUNetv2_evaluate_folder, which handles both")


class Study:
    """One dataset and profile: where its models train, predict and record."""

    def __init__(self, dataset: str, profile: str, device: str, out_root: str, train_minutes: float):
        from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results
        os.environ.update(nnunet_environment())  # the predictors look up the trainers too
        if not (nnUNet_raw and nnUNet_preprocessed and nnUNet_results):
            raise SystemExit("benchmark: set nnUNet_raw, nnUNet_preprocessed and nnUNet_results (see nnU-Net's docs)")
        self.raw, self.pre = dataset_folder(nnUNet_raw, dataset), dataset_folder(nnUNet_preprocessed, dataset)
        self.results = nnUNet_results
        self.dataset, self.name, self.profile = dataset, os.path.basename(self.raw), profile
        self.models, self.device, self.out_root = PROFILES[profile], device, out_root
        self.plans = PROFILE_PLANS.get(profile, "nnUNetPlans")
        # equal-time: epochs from a calibration; equal-wallclock: each trainer stops when its own clock says so
        self.wall_clock = profile.startswith("equal-wallclock")
        self.budget_s = train_minutes * 60 if profile.startswith(("equal-time", "equal-wallclock")) else None
        if self.budget_s:
            check_budget(out_root, self.name, profile, self.budget_s)
        dataset_json = read_json(os.path.join(self.raw, "dataset.json"))
        self.ending = dataset_json["file_ending"]
        values = {k: v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v  # nnU-Net reads [1] as 1
                  for k, v in dataset_json["labels"].items()}
        self.labels = {v: k for k, v in values.items() if isinstance(v, int) and v > 0}
        check_plain_labels(self.name, dataset_json)

    def results_root(self, seed: int) -> str:
        """nnUNet_results for seed 0 (models shared by profiles and by the user), a subfolder for other seeds
        and for equal-time budgets, so trainings of one trainer and fold do not overwrite each other."""
        kind = "wallclock" if self.wall_clock else "equal-time"
        tag = f"_{kind}-{self.budget_s:.0f}s" if self.budget_s else ""
        return self.results if seed == 0 and not tag else os.path.join(self.results, "distilldsm_runs",
                                                                       f"seed{seed}{tag}")

    def model_folder(self, trainer: str, config: str, seed: int) -> str:
        return os.path.join(self.results_root(seed), self.name, model_identifier(trainer, config, self.plans))

    def environment(self, seed: int, epochs: Optional[int] = None) -> dict:
        from benchmarks.budget_trainers import (
            EPOCHS_VARIABLE,
            FINAL_VALIDATION_VARIABLE,
            SEED_VARIABLE,
        )
        from benchmarks.wall_clock import SECONDS_VARIABLE
        # the benchmark predicts and scores its own cases: nnU-Net's final validation is skipped (budget_trainers)
        env = dict(os.environ, nnUNet_results=self.results_root(seed), **{SEED_VARIABLE: str(seed),
                                                                          FINAL_VALIDATION_VARIABLE: "0"})
        if epochs is not None:
            env[EPOCHS_VARIABLE] = str(epochs)
        if self.wall_clock:
            env[SECONDS_VARIABLE] = str(self.budget_s)
        return env

    def prepare(self):
        configs = sorted({m.configuration for m in self.models})
        if is_preprocessed(self.pre, configs, self.plans):
            return
        say(f"{self.name}: plan and preprocess ({self.plans})")
        if self.plans == CPU_PLANS:
            plan_and_preprocess_cpu(int(self.name[len("Dataset"):len("Dataset") + 3]), configs)
        else:
            run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", self.dataset, "-c", *configs, "-np", "2"])

    def calibration(self) -> Dict[str, dict]:
        """Equal-time: each trainer's seconds per epoch (a 2-epoch calibration training, the second epoch
        counts) and the epochs that fill its share of the budget (all of it, except for a from-2d run's two
        trainings). Kept in calibration.json, so every run of a study uses the same epochs."""
        path = os.path.join(profile_folder(self.out_root, self.name, self.profile), "calibration.json")
        calib = read_json(path) if os.path.isfile(path) else {}
        timed = [(m.recipe, m.budget, m.configuration) for m in self.models] + [
            ("nnUNetTrainer", STARTS_FROM[m.budget], "2d") for m in self.models if m.budget in STARTS_FROM]
        for recipe, budget, config in timed:
            trainer = trainer_name(recipe, budget)
            key = f"{trainer}__{config}"
            if key not in calib:
                calib_trainer = trainer_name(recipe, "calib")  # same network, same data: the same seconds per epoch
                env = dict(self.environment(0), nnUNet_results=os.path.join(self.results, "distilldsm_runs",
                                                                             "calibration"))
                folder = os.path.join(env["nnUNet_results"], self.name,
                                      model_identifier(calib_trainer, config, self.plans))
                self.refuse_another_recipe(folder, calib_trainer, config)
                if not os.path.isfile(os.path.join(folder, "fold_0", "checkpoint_final.pth")):
                    say(f"calibrate {calib_trainer} {config}")
                    run_nnunet(["nnUNetv2_train", self.dataset, config, "0", "-tr", calib_trainer, "-p", self.plans,
                                "-device", self.device], env)
                epoch_s = training_record(folder, 0)["epoch_s"][-1]
                calib[key] = {"epoch_s": epoch_s, "commit": source_commit(), "cpus": os.cpu_count()}
                write_json(path, calib)
            calib[key]["epochs"] = max(1, round(BUDGET_SHARE.get(budget, 1) * self.budget_s / calib[key]["epoch_s"]))
        return calib

    def run_missing(self, folds: List[int], seeds: List[int], train: bool, timing_cases: int, rounds: int):
        """Train, predict and record every run of every model whose run file is missing."""
        calib = self.calibration() if self.budget_s and train and not self.wall_clock else None
        for seed in seeds:
            for fold in folds:
                missing = [m for m in self.models
                           if not os.path.isfile(run_file(self.out_root, self.name, self.profile, m.label, fold, seed))]
                if not missing:
                    continue
                if not train:
                    say(f"{run_id(fold, seed)}: {len(missing)} model(s) without a run file; --no-train leaves them")
                    continue
                # 3d_fullres last: it costs several 2d-cost trainings, so a cut-off invocation keeps the most runs
                missing.sort(key=lambda m: m.configuration == "3d_fullres")
                for m in missing:
                    model, trainer, config, predictor = m.label, m.trainer, m.configuration, m.predictor
                    folder = self.model_folder(trainer, config, seed)
                    epochs = calib[f"{trainer}__{config}"]["epochs"] if calib else None
                    start = self.start_from_2d(m, fold, seed, calib)
                    self.train_if_missing(model, trainer, config, fold, seed, epochs,
                                          start["weights"] if start else None)
                    # after training: without imagesTs the cases are the fold's validation cases, from the
                    # splits_final.json that nnU-Net's first training of the dataset writes
                    cases = benchmark_cases(self.raw, self.pre, fold, self.ending)
                    say(f"{model}: predict {run_id(fold, seed)} ({len(cases)} cases)")
                    pred_dir = os.path.join(self.out_root, "work", self.name, self.profile, slug(model),
                                            run_id(fold, seed))
                    predict_timed(load_predictor(predictor, folder, fold, torch.device(self.device)), cases, pred_dir)
                    record = {"dataset": self.name, "profile": self.profile, "model": model, "trainer": trainer,
                              "configuration": config, "plans": self.plans, "predictor": predictor, "fold": fold,
                              "seed": seed, "run": run_id(fold, seed), "commit": source_commit(),
                              "cpus": os.cpu_count(),
                              "nnUNet_n_proc_DA": os.environ.get("nnUNet_n_proc_DA"), "device": self.device,
                              "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              **training_record(folder, fold), **trained_by(folder, fold),
                              "cases": evaluate(cases, pred_dir, self.ending, self.labels)}
                    if self.budget_s:
                        record["budget_s"] = self.budget_s
                    if start:
                        record.update(started_from=start["trainer"], start_train_s=start["train_s"],
                                      start_iterations=start["iterations"], start_contended=start["contended"])
                    write_json(run_file(self.out_root, self.name, self.profile, model, fold, seed), record)
                    say(f"{model}: {run_id(fold, seed)} recorded")
                measure_costs_if_missing(self, fold, seed, timing_cases, rounds)

    def refuse_another_recipe(self, folder: str, trainer: str, config: str):
        """Stop before reusing a model folder (or calibration) trained with another network than `trainer`
        builds now."""
        if not os.path.isfile(os.path.join(folder, "plans.json")):
            return
        changed = changed_architecture(folder, trainer, config, read_json(os.path.join(self.pre, f"{self.plans}.json")))
        if changed:
            raise SystemExit(
                f"benchmark: {folder} holds models of a different network than {trainer} builds now ("
                + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in changed.items())
                + "): the trainer's recipe changed since they were trained. Move that folder away (its run files "
                  "describe the old recipe) and run again to train the new one")

    def train_if_missing(self, label: str, trainer: str, config: str, fold: int, seed: int,
                         epochs: Optional[int] = None, pretrained: Optional[str] = None):
        """nnUNetv2_train unless the fold's final checkpoint exists; a training killed with an earlier
        invocation resumes from its last epoch (nnU-Net's --c) instead of starting again."""
        folder = self.model_folder(trainer, config, seed)
        fold_dir = os.path.join(folder, f"fold_{fold}")
        self.refuse_another_recipe(folder, trainer, config)
        if os.path.isfile(os.path.join(fold_dir, "checkpoint_final.pth")):
            return
        resume = os.path.isfile(os.path.join(fold_dir, "checkpoint_latest.pth"))
        say(f"{label}: {'resume' if resume else 'train'} {run_id(fold, seed)} ({trainer}, {config}"
            + (f", {epochs} epochs" if epochs else "") + (", from the 2d model" if pretrained else "") + ")")
        extra = ["--c"] if resume else ["-pretrained_weights", pretrained] if pretrained else []
        before = contention.snapshot()
        run_nnunet(["nnUNetv2_train", self.dataset, config, str(fold), "-tr", trainer, "-p", self.plans, "-device",
                    self.device, *extra],
                   self.environment(seed, epochs))
        after = contention.snapshot()
        write_json(os.path.join(fold_dir, TRAINED_BY), {
            "trained_commit": source_commit(), "resumed": resume, "contention": {"start": before, "end": after},
            "contended": bool(before["other_processes"] or after["other_processes"])})

    def start_from_2d(self, model: Model, fold: int, seed: int, calib: Optional[dict] = None) -> Optional[dict]:
        """For a fine-tune (a from-2d budget): the 2d model it starts from (trained if missing, for its share of
        the budget in equal-time) converted by `nnunet-distilldsm from-2d` into -pretrained_weights; None for
        other models."""
        if model.budget not in STARTS_FROM:
            return None
        from nnunet_distilldsm.from_2d import CHECKPOINTS, convert
        trainer, base = model.trainer, trainer_name("nnUNetTrainer", STARTS_FROM[model.budget])
        folder = self.model_folder(base, "2d", seed)
        checkpoint = os.path.join(folder, f"fold_{fold}", "checkpoint_final.pth")
        self.train_if_missing("the 2d model to start from", base, "2d", fold, seed,
                              calib[f"{base}__2d"]["epochs"] if calib else None)
        # keeping the segmentation layers: the fine-tune's epoch 0 in its own fold folder, for train_if_missing's --c
        if model.recipe in KEEPS_SEG_LAYERS:
            weights = None
            fold_dir = os.path.join(self.model_folder(trainer, "2d", seed), f"fold_{fold}")
            if not any(os.path.isfile(os.path.join(fold_dir, f)) for f in CHECKPOINTS):
                run_nnunet(["nnunet-distilldsm", "from-2d", checkpoint, "-tr", trainer, "--keep-seg-layers",
                            "--seed", str(seed)], self.environment(seed))
        else:
            weights = os.path.join(self.out_root, "work", self.name, self.profile,
                                   f"{trainer}_{run_id(fold, seed)}.pth")
            os.makedirs(os.path.dirname(weights), exist_ok=True)
            convert(checkpoint, weights, trainer, force=True, seed=seed)
        base_record = training_record(folder, fold)
        return {"trainer": base, "weights": weights, "train_s": base_record["train_s"],
                "iterations": base_record["iterations"],
                "contended": bool(trained_by(folder, fold).get("contended", False))}



def run_benchmark(dataset: str, folds: List[int], profile: str, device: str = "cpu", out_root: str = "benchmarks",
                  train: bool = True, rounds: int = 3, seeds: Optional[List[int]] = None,
                  train_minutes: float = DEFAULT_TRAIN_MINUTES, timing_cases: int = 5,
                  test_images: Optional[str] = None, test_labels: Optional[str] = None) -> List[dict]:
    study = Study(dataset, profile, device, out_root, train_minutes)
    if train:
        study.prepare()
    study.run_missing(folds, seeds or [0], train, timing_cases, rounds)
    rows = report_study(study)
    if test_images:
        from benchmarks.test_set import report_test_set, score_test_set
        score_test_set(study, folds, seeds or [0], test_images, test_labels)
        report_test_set(study)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset", required=True,
                   help="dataset id or name; 'synthetic' writes the embedded depth-context dataset (901, or "
                        "--variant's) and "
                        "'real-scans' builds the real-scan brain dataset (902) if missing; 'hippocampus' writes "
                        "Dataset004_Hippocampus from --hippocampus-source if missing")
    from benchmarks.hippocampus import SHARED_COPY
    p.add_argument("--hippocampus-source", default=SHARED_COPY,
                   help="with -d hippocampus: a folder of images/hippocampus_NNN.nii.gz and labels/ (default: the "
                        "project's copy, ../shared/data/Task04_Hippocampus_dev beside the repository); with the "
                        "Decathlon's own folder use nnU-Net's `nnUNetv2_convert_MSD_dataset -i Task04_Hippocampus` "
                        "and -d 4")
    from benchmarks.synthetic import VARIANTS
    p.add_argument("--variant", choices=sorted(VARIANTS), default="balls",
                   help="with -d synthetic: which synthetic dataset to write and use: "
                        + "; ".join(f"'{k}' ({v[0]}, {v[1]})" for k, v in VARIANTS.items()) + " (default balls)")
    p.add_argument("-f", "--folds", type=int, nargs="+", default=[0], help="folds: one run per fold and seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="training seeds: one run per fold and seed (default 0)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu-small")
    p.add_argument("--train-minutes", type=float, default=DEFAULT_TRAIN_MINUTES,
                   help=f"equal-time, equal-wallclock: training minutes per model and run "
                        f"(default {DEFAULT_TRAIN_MINUTES:g})")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--out", default="benchmarks",
                   help="writes <out>/results/runs/... (run files) and <out>/results/<dataset>_<profile>.md, "
                        ".csv, .png")
    p.add_argument("--no-train", action="store_true", help="re-aggregate the run files present; train nothing")
    p.add_argument("--rounds", type=int, default=3,
                   help="inference timing rounds per model, interleaved; median counts")
    p.add_argument("--timing-cases", type=int, default=5, help="test cases per inference timing round (default 5)")
    p.add_argument("--test-images", help="a folder of extra cases kept out of the folds (nnU-Net's input layout, "
                                         "CASE_0000.nii.gz): every trained fold's model (-f) and their ensemble "
                                         "predict it, nothing is trained for it; tables <dataset>_<profile>-test")
    p.add_argument("--test-labels", help="with --test-images: a label file CASE.nii.gz for each case")
    a = p.parse_args(argv)
    if bool(a.test_images) != bool(a.test_labels):
        p.error("--test-images and --test-labels go together: the test set is scored against its labels")
    if a.variant != "balls" and a.dataset != "synthetic":
        variant_id = VARIANTS[a.variant][0]
        p.error(f"--variant {a.variant} only applies to -d synthetic (got -d {a.dataset}): run "
                f"`-d synthetic --variant {a.variant}` to write and use "
                f"Dataset{variant_id:03d}_{VARIANTS[a.variant][1]}, "
                f"or drop --variant")
    try:
        require_benchmark_dependencies()  # before hours of training, not at the first HD95
    except MissingBenchmarkDependency as e:
        raise SystemExit(f"benchmark: {e}")
    dataset = a.dataset
    if dataset == "synthetic":
        from nnunetv2.paths import nnUNet_raw

        from benchmarks.synthetic import write_dataset
        variant_id, variant_name, _ = VARIANTS[a.variant]
        dataset = str(variant_id)
        if nnUNet_raw and not os.path.isdir(os.path.join(nnUNet_raw, f"Dataset{variant_id:03d}_{variant_name}")):
            write_dataset(nnUNet_raw, variant_id, variant=a.variant)
    elif dataset == "real-scans":
        from nnunetv2.paths import nnUNet_raw

        from benchmarks.real_scans import DATASET_NAME, build_brain_dataset
        dataset = "902"
        if nnUNet_raw and not os.path.isdir(os.path.join(nnUNet_raw, f"Dataset902_{DATASET_NAME}")):
            build_brain_dataset(nnUNet_raw, 902)
    elif dataset == "hippocampus":
        from nnunetv2.paths import nnUNet_raw

        from benchmarks.hippocampus import DATASET_ID, write_hippocampus
        dataset = str(DATASET_ID)
        if nnUNet_raw:
            write_hippocampus(nnUNet_raw, a.hippocampus_source)
    t = time.time()
    run_benchmark(dataset, a.folds, a.profile, a.device, a.out, not a.no_train, a.rounds, a.seeds, a.train_minutes,
                  a.timing_cases, a.test_images, a.test_labels)
    say(f"wall time {time.time() - t:.0f} s")
