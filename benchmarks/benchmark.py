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
(nnU-Net's 1000 epochs), `tiny`, `equal-time-tiny` and `equal-wallclock-tiny` (tests).
Costs (parameters, FLOPs, inference seconds per voxel with the models taking turns for
--rounds rounds, training step time and memory) are measured once per profile, on the first
run's models, and kept beside the runs.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import torch

from benchmarks import contention, report
from benchmarks.budget_trainers import Model, find_trainer, trainer_name
from benchmarks.cpu_planner import CPU_PLANS, plan_and_preprocess_cpu
from benchmarks.metrics import (
    MissingBenchmarkDependency,
    dice,
    flops_per_voxel,
    hd95,
    require_benchmark_dependencies,
)
from benchmarks.model_folder import network_from_model_folder
from benchmarks.nnunet_commands import is_preprocessed, nnunet_environment, run_nnunet
from benchmarks.run_store import (
    check_budget,
    cost_file,
    profile_folder,
    read_json,
    run_file,
    run_id,
    slug,
    source_commit,
    write_json,
)

STANDARD = [Model("nnU-Net 2d", "nnUNetTrainer", None), Model("nnU-Net 3d_fullres", "nnUNetTrainer", None,
                                                              "3d_fullres"),
            Model("Residual DSM", "ResidualDSMTrainer", None),
            Model("nnU-Net 2d, slices as channels +-2", "SlicesAsChannelsTrainer", None),
            Model("Distill DSM", "DistillDSMTrainer", None),
            Model("Distill DSM, whole stack", "DistillDSMTrainer", None, predictor="whole-stack")]
# one module per block (the authors' code): the "Distill DSM per block" rows of the studies
PER_BLOCK = [Model("Distill DSM per block", "DistillDSMTrainer_perBlock", None),
             Model("Distill DSM per block, whole stack", "DistillDSMTrainer_perBlock", None, predictor="whole-stack")]
TWO_D, THREE_D = STANDARD[:2]


def budgeted(models, budget: str):
    return [m.with_budget(budget) for m in models]


FROM_2D = Model("Distill DSM from 2d", "DistillDSMTrainer", None)  # with a from2d_* budget
FROM_2D_PER_BLOCK = Model("Distill DSM per block from 2d", "DistillDSMTrainer_perBlock", None)
# a fine-tune's budget -> the budget of the nnU-Net 2d model (same fold and seed) it starts from via `from-2d`
STARTS_FROM = {"from2d_bench": "bench", "from2d_tiny": "tiny", "from2d_timed": "timedStart"}
# fine-tunes started by `from-2d --keep-seg-layers` (the 2d segmentation layers kept; nnUNetv2_train --c)
KEEPS_SEG_LAYERS = {"DistillDSMTrainer_identityStartSeg"}
# equal-time: a from-2d run's 2d training counts towards its budget; the fine-tune gets this share of it
# (as its iterations are 20% of the 2d model's in cpu-small), the 2d model it starts from the rest
FROM_2D_SHARE = 0.2
BUDGET_SHARE = {"from2d_timed": FROM_2D_SHARE, "timedStart": 1 - FROM_2D_SHARE}
TIMED_BUDGETS = ("timed", "from2d_timed", "timedStart")  # epochs from the recipe's `calib` training


def with_from_2d(models, budget: str):
    """`models` at `budget`, the from-2d fine-tunes at its from-2d budget."""
    return [m.with_budget(f"from2d_{budget}" if m in (FROM_2D, FROM_2D_PER_BLOCK) else budget) for m in models]


# the modules: share of channels distilled (alpha 1/4, 1/2, 1 = the authors' code) and placement (one per block;
# one after every conv = the paper's text, over twice the reach), and the modules on top of slices as channels
MODULE_RECIPE = [TWO_D, THREE_D, PER_BLOCK[0],
                 Model("Distill DSM per block, alpha 1/4", "DistillDSMTrainer_alpha025", None),
                 Model("Distill DSM per block, alpha 1", "DistillDSMTrainer_alpha1", None),
                 Model("Distill DSM, a module after every conv", "DistillDSMTrainer_perConv", None),
                 Model("Distill DSM per block, slices as channels +-2", "DistillDSMTrainer_slicesAsChannels", None),
                 Model("Distill DSM, a module after every conv, alpha 1", "DistillDSMTrainer_perConvAlpha1", None)]
PER_CONV = "Distill DSM, a module after every conv"

PROFILES = {  # name -> [Model]
    "cpu-small": with_from_2d(STANDARD + [FROM_2D] + PER_BLOCK + [FROM_2D_PER_BLOCK], "bench"),
    "equal-time": with_from_2d(STANDARD + [FROM_2D] + PER_BLOCK + [FROM_2D_PER_BLOCK], "timed"),
    # equal time by each trainer's own clock (wall_clock.py), not by a calibrated number of epochs
    "equal-wallclock": budgeted(STANDARD + PER_BLOCK, "wallclock"),
    "full": STANDARD,
    # neighbouring slices as input channels (2.5D): +-1 and +-2 against 2d and Distill DSM
    "channels-ablation": budgeted([TWO_D, Model("nnU-Net 2d, slices as channels +-1", "SlicesAsChannelsTrainer_k1",
                                                None),
                                   STANDARD[3], PER_BLOCK[0]], "bench"),
    # the slab recipe: foreground oversampling at one slab per batch, and slabs per batch at the 2d batch's
    # voxels; all predicted as users predict (stock nnUNetv2_predict)
    "slab-recipe": budgeted([TWO_D, THREE_D,
                             Model("Distill DSM per block, stock oversampling", "DistillDSMTrainer_stockOversampling",
                                   None),
                             PER_BLOCK[0],
                             Model("Distill DSM per block, 2 slabs per batch", "DistillDSMTrainer_2slabs", None),
                             Model("Distill DSM per block, 3 slabs per batch", "DistillDSMTrainer_3slabs", None)],
                            "bench"),
    # the same on the default's network, a module after every conv (its planned row is module-recipe's model)
    "slab-recipe-per-conv": budgeted([TWO_D, THREE_D,
                                      Model(f"{PER_CONV}, stock oversampling",
                                            "DistillDSMTrainer_perConvStockOversampling", None),
                                      Model(PER_CONV, "DistillDSMTrainer_perConv", None),
                                      Model(f"{PER_CONV}, 2 slabs per batch", "DistillDSMTrainer_perConv2slabs", None),
                                      Model(f"{PER_CONV}, 3 slabs per batch", "DistillDSMTrainer_perConv3slabs", None)],
                                     "bench"),
    # the modules, at equal iterations and at equal wall clock
    "module-recipe": budgeted(MODULE_RECIPE, "bench"),
    "equal-wallclock-module-recipe": budgeted(MODULE_RECIPE, "wallclock"),
    # how a fine-tune from the 2d model starts its modules: as initialised, or as identity convs
    "from-2d-start": budgeted([TWO_D, THREE_D, PER_BLOCK[0]], "bench") + budgeted([
        FROM_2D_PER_BLOCK,
        Model("Distill DSM per block from 2d, identity modules", "DistillDSMTrainer_identityStart", None),
        Model("Distill DSM per block from 2d, identity modules, 2d seg layers kept",
              "DistillDSMTrainer_identityStartSeg",
              None)], "from2d_bench"),
    # which slab depth buys the most accuracy per second of training; all predicted whole-stack
    "slab-sweep": budgeted([TWO_D] + [Model(f"Distill DSM per block, slab {d}", r, None,
                                            predictor="whole-stack") for d, r in
                                      (("4", "DistillDSMTrainer_slab4"), ("8", "DistillDSMTrainer_slab8"),
                                       ("planned", "DistillDSMTrainer_perBlock"), ("16", "DistillDSMTrainer_slab16"))],
                           "bench"),
    # real anatomy (Task04 Hippocampus) on nnU-Net's planner with CPU-sized batches (cpu_planner.py): the six models
    # at equal iterations, the default also predicted whole-stack; four of them at equal wall clock
    "cpu-real": budgeted(STANDARD[:4] + [STANDARD[4], PER_BLOCK[0], STANDARD[5]], "bench"),
    "equal-wallclock-cpu-real": budgeted(STANDARD[:2] + [STANDARD[3], STANDARD[4]], "wallclock"),
    "equal-time-tiny": with_from_2d([TWO_D, STANDARD[4], FROM_2D], "timed"),
    "equal-wallclock-tiny": budgeted([TWO_D, STANDARD[4]], "wallclock"),
    "tiny": with_from_2d([TWO_D, STANDARD[4], STANDARD[5], FROM_2D], "tiny"),
}
# profiles trained on other plans than nnU-Net's default (nnUNetPlans)
PROFILE_PLANS = {"cpu-real": CPU_PLANS, "equal-wallclock-cpu-real": CPU_PLANS}
# profiles whose table also gives per-class Dice as the paper reports it (mean +- sd over folds)
PER_CLASS_PROFILES = {"cpu-real", "equal-wallclock-cpu-real"}
PREDICTORS = {"stock": "nnunetv2.inference.predict_from_raw_data.nnUNetPredictor",
              "whole-stack": "nnunet_distilldsm.whole_stack_predictor.WholeStackPredictor"}
# a run of equal-time is 9 budgets (7 models and the two from-2d trainings) plus predictions (docs/benchmark.md)
DEFAULT_TRAIN_MINUTES = 6.0
# equal iterations and equal time, in one accuracy-against-training-time plot
TRADEOFF = {**{p: ("cpu-small", "equal-time", "equal-wallclock") for p in ("cpu-small", "equal-time",
                                                                           "equal-wallclock")},
            **{p: ("tiny", "equal-time-tiny", "equal-wallclock-tiny")
               for p in ("tiny", "equal-time-tiny", "equal-wallclock-tiny")}}


def model_identifier(trainer: str, config: str, plans: str = "nnUNetPlans") -> str:
    """nnU-Net's name of a model folder."""
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
    return convert_trainer_plans_config_to_identifier(trainer, plans, config)


def say(msg: str):
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def dataset_folder(root: str, dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    return os.path.join(root, maybe_convert_to_dataset_name(dataset))


def benchmark_cases(raw: str, preprocessed: str, fold: int, ending: str):
    """[(case id, image files, label file)]: imagesTs with labelsTs if present, else fold's validation cases."""
    if os.path.isdir(os.path.join(raw, "labelsTs")):
        return labelled_cases(os.path.join(raw, "imagesTs"), os.path.join(raw, "labelsTs"), ending)
    ids = sorted(read_json(os.path.join(preprocessed, "splits_final.json"))[fold]["val"])
    return case_files(os.path.join(raw, "imagesTr"), os.path.join(raw, "labelsTr"), ending, ids)


def case_files(images: str, labels: str, ending: str, ids):
    """[(case id, image files, label file)] of `ids`, by nnU-Net's naming rules (CASE_0000.nii.gz, ...)."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder
    files = create_lists_from_splitted_dataset_folder(images, ending, ids, num_processes=1)
    return [(i, f, os.path.join(labels, i + ending)) for i, f in zip(ids, files)]


def labelled_cases(images: str, labels: str, ending: str):
    """case_files of every case in `images`; a clear error when the folders do not pair up."""
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
    for folder in (images, labels):
        if not os.path.isdir(folder):
            raise SystemExit(f"benchmark: no folder {folder}: the images in nnU-Net's input layout "
                             f"(CASE_0000{ending}, ...), the labels a file CASE{ending} for each case")
    ids = sorted(get_identifiers_from_splitted_dataset_folder(images, ending))
    unlabelled = [i for i in ids if not os.path.isfile(os.path.join(labels, i + ending))]
    if not ids or unlabelled:
        raise SystemExit(f"benchmark: {images} holds {len(ids)} case(s) named CASE_0000{ending}"
                         + (f"; {len(unlabelled)} have no label CASE{ending} in {labels} (e.g. {unlabelled[0]})"
                            if unlabelled else "") + ": give a label for every test case")
    return case_files(images, labels, ending, ids)


def load_predictor(kind: str, model_folder: str, fold: int, device: torch.device):
    import pydoc
    predictor = pydoc.locate(PREDICTORS[kind])(device=device, verbose=False, verbose_preprocessing=False,
                                               allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder, (fold,), "checkpoint_final.pth")
    return predictor


def predict_timed(predictor, cases, out_dir: str) -> float:
    """Seconds per input voxel to predict `cases` (reading, preprocessing, network, export)."""
    os.makedirs(out_dir, exist_ok=True)
    voxels = sum(np.prod(sitk.ReadImage(c[1][0]).GetSize()) for c in cases)
    t = time.perf_counter()
    # nnU-Net's sequential prediction: no worker processes, whose start-up (seconds each call) would swamp the
    # per-voxel figure of small cases and shrink every ratio towards 1
    predictor.predict_from_files_sequential([c[1] for c in cases], [os.path.join(out_dir, c[0]) for c in cases],
                                            save_probabilities=False, overwrite=True)
    return (time.perf_counter() - t) / voxels


def network_cost(model_folder: str, fold: int) -> Dict[str, float]:
    net, cfg, n_in = network_from_model_folder(model_folder, fold, deep_supervision=False)
    return {"params": sum(p.numel() for p in net.parameters()),
            "flops_per_voxel": flops_per_voxel(net, (1, n_in, *cfg.patch_size))}


def training_record(model_folder: str, fold: int) -> dict:
    """Epochs, iterations and seconds in nnU-Net's training loop, from the final checkpoint's log: train_s
    sums the epochs' own seconds; wall_s runs from the first epoch's start to the last one's end, with the
    checkpoints and plots between epochs (and any interruption before a --c)."""
    ckpt = torch.load(os.path.join(model_folder, f"fold_{fold}", "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)
    log = ckpt["logging"]
    seconds = [e - s for s, e in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])]
    trainer = find_trainer(ckpt["trainer_name"])
    per_epoch = getattr(trainer, "iterations_per_epoch", 250)  # nnUNetTrainer's default
    return {"epochs": len(seconds), "iterations": len(seconds) * per_epoch, "train_s": float(sum(seconds)),
            "wall_s": float(log["epoch_end_timestamps"][-1] - log["epoch_start_timestamps"][0]),
            "epoch_s": [float(s) for s in seconds], "seeded": hasattr(trainer, "iterations_per_epoch")}


TRAINED_BY = "distilldsm_trained_by.json"  # beside nnU-Net's checkpoints: the commit and contention of a training


def trained_by(model_folder: str, fold: int) -> dict:
    """What the benchmark recorded when it trained this fold: trained_commit, contention; unknown for models
    trained before it recorded them."""
    path = os.path.join(model_folder, f"fold_{fold}", TRAINED_BY)
    return read_json(path) if os.path.isfile(path) else {"trained_commit": "unknown", "contention": None}


def evaluate(cases, pred_dir: str, ending: str, labels: Dict[int, str]) -> dict:
    """{case: {"dice": {class: v}, "hd95": {class: mm}}} with NaN written as null."""
    out = {}
    for case, _, label_file in cases:
        ref_img = sitk.ReadImage(label_file)
        ref = sitk.GetArrayFromImage(ref_img)
        pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(pred_dir, case + ending)))
        spacing = ref_img.GetSpacing()[::-1]
        clean = lambda v: None if math.isnan(v) else v  # noqa: E731
        out[case] = {"dice": {n: clean(dice(pred, ref, v)) for v, n in labels.items()},
                     "hd95": {n: clean(hd95(pred, ref, v, spacing)) for v, n in labels.items()}}
    return out


def changed_architecture(model_folder: str, trainer: str, config: str, plans: dict) -> Dict[str, tuple]:
    """{arch kwarg: (in the model folder's plans.json, as `trainer` plans it now)} for each that differs:
    a trainer whose recipe changed (e.g. a new default placement) would otherwise reuse the old model."""
    from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer
    cls = find_trainer(trainer)
    if cls is None:  # not one of the benchmark's trainers: nnU-Net's plans, as planned
        return {}
    now = cls.slab_plans(plans, config) if issubclass(cls, SlabTrainer) else plans
    # tuples as JSON has them
    now = json.loads(json.dumps(now["configurations"][config]["architecture"]["arch_kwargs"]))
    then = read_json(os.path.join(model_folder, "plans.json"))["configurations"][config]["architecture"]["arch_kwargs"]
    return {k: (then.get(k), now.get(k)) for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)}


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
        self.labels = {v: k for k, v in dataset_json["labels"].items() if isinstance(v, int) and v > 0}

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
                self.measure_costs_if_missing(fold, seed, timing_cases, rounds)

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

    def measure_costs_if_missing(self, fold: int, seed: int, timing_cases: int, rounds: int):
        """Costs of every model, on this run's models; inference timed with the models taking turns."""
        if all(os.path.isfile(cost_file(self.out_root, self.name, self.profile, m.label)) for m in self.models):
            return
        if not all(os.path.isfile(os.path.join(self.model_folder(m.trainer, m.configuration, seed), f"fold_{fold}",
                                               "checkpoint_final.pth")) for m in self.models):
            return
        cases = benchmark_cases(self.raw, self.pre, fold, self.ending)[:timing_cases]
        dev = torch.device(self.device)
        predictors = {m.label: load_predictor(m.predictor, self.model_folder(m.trainer, m.configuration, seed), fold,
                                              dev) for m in self.models}
        infer = {m.label: [] for m in self.models}
        work = os.path.join(self.out_root, "work", self.name, self.profile, "timing")
        for r in range(rounds):
            for model in infer:
                say(f"{model}: time prediction, round {r + 1} of {rounds}")
                infer[model].append(predict_timed(predictors[model], cases, os.path.join(work, slug(model))))
        step_cost = {}
        for model, trainer, config in ((m.label, m.trainer, m.configuration) for m in self.models):
            folder = self.model_folder(trainer, config, seed)
            if (trainer, config) not in step_cost:
                say(f"{model}: training step cost")
                step = json.loads(subprocess.run(
                    [sys.executable, "-m", "benchmarks.train_step", folder, "--fold", str(fold)],
                    check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
                step_cost[trainer, config] = {**network_cost(folder, fold), **step}
            write_json(cost_file(self.out_root, self.name, self.profile, model),
                       {**step_cost[trainer, config], "infer_s_per_voxel": statistics.median(infer[model]),
                        "infer_rounds": infer[model], "timing_cases": len(cases), "measured_on": run_id(fold, seed),
                        "commit": source_commit(), "threads": torch.get_num_threads(), "cpus": os.cpu_count()})

    def report(self) -> List[dict]:
        rows = report.aggregate(self.out_root, self.name, self.profile, self.models)
        if not rows:
            say(f"no run files under {profile_folder(self.out_root, self.name, self.profile)} yet")
            return rows
        header = ""
        if self.budget_s and self.wall_clock:
            header = (f"Budget: {self.budget_s / 60:g} wall-clock minutes of training per model and run, counted by "
                      f"each trainer from its first epoch's start, validation, checkpoints and plots included "
                      f"(wall_s in the CSV).")
        elif self.budget_s:
            header = f"Budget: {self.budget_s / 60:g} training minutes per model and run."
        pairs = report.between_models(self.out_root, self.name, self.profile, self.models)
        stem = report.write_tables(rows, self.out_root, self.name, self.profile, header, pairs)
        if self.profile in PER_CLASS_PROFILES:
            with open(stem + ".md", "a") as f:
                f.write("\nPer class, the paper's way (its Tables 2 and 3): Dice mean +- sd over runs (folds) of each "
                        "run's mean over its cases:\n\n"
                        + report.per_class_over_runs(self.out_root, self.name, self.profile, self.models) + "\n")
        report.plot_profile(rows, stem + ".png", f"{self.name}, {self.profile}")
        by_profile = {p: report.aggregate(self.out_root, self.name, p,
                                          PROFILES[p]) for p in TRADEOFF.get(self.profile, ())}
        by_profile = {p: r for p, r in by_profile.items() if r}
        if by_profile:
            report.plot_tradeoff(by_profile, os.path.join(self.out_root, "results", f"{self.name}_tradeoff.png"),
                                 f"{self.name}: accuracy against training time")
        for r in rows:
            say(f"{r['model']}: {r['runs']} run(s), Dice {r['dice_mean']:.3f} "
                f"{report.interval(r['dice_lo'], r['dice_hi'])}"
                f", vs 2d {report.ci_text(r, '2d')}, vs 3d {report.ci_text(r, '3d')}")
        say(f"wrote {stem}.md, .csv, .png")
        return rows


def run_benchmark(dataset: str, folds: List[int], profile: str, device: str = "cpu", out_root: str = "benchmarks",
                  train: bool = True, rounds: int = 3, seeds: Optional[List[int]] = None,
                  train_minutes: float = DEFAULT_TRAIN_MINUTES, timing_cases: int = 5,
                  test_images: Optional[str] = None, test_labels: Optional[str] = None) -> List[dict]:
    study = Study(dataset, profile, device, out_root, train_minutes)
    if train:
        study.prepare()
    study.run_missing(folds, seeds or [0], train, timing_cases, rounds)
    rows = study.report()
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
