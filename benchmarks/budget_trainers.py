"""The benchmark's trainers: ablation recipes and short training budgets, kept out of the user's trainers.

A benchmark model is a (recipe, budget) pair. A recipe is a trainer class: nnU-Net's nnUNetTrainer, one of the
user's trainers (nnunet_distilldsm.trainers) or an ablation below. A budget fixes epochs and iterations:
`tiny` 2 x 4 (tests), `demo` 10 x 25, `bench` 25 x 25 (cpu-small), `calib` 2 x 25 (seconds per epoch),
`timed` NNUNET_DISTILLDSM_EPOCHS x 25 (equal-time), `wallclock` epochs of 25 until NNUNET_DISTILLDSM_TRAIN_SECONDS
of wall clock are spent (wall_clock.py), `from2d_*` fine-tunes from a 2d model, `timedStart` the 2d model an
equal-time fine-tune starts from. Every pair is a generated class named `<recipe>_<budget>`, built the first time
a study, a test or nnU-Net's lookup asks for it (`budgeted`).

Generated classes, not one budget mixin read from the environment: nnU-Net names a model's results folder after
its trainer class, so a budget read from the environment would put runs of different budgets into one folder and
`--c` would resume one budget's checkpoint under another; and the names the committed run files and model folders
carry stay valid. nnU-Net finds these classes through `trainer_dir()` (benchmarks/__init__.py), a second
folder that the benchmark, the demo and the tests add to nnUNet_extTrainer (nnunet_commands.nnunet_environment).

The benchmark, `epoch-speed` and the demo set NNUNET_DISTILLDSM_FINAL_VALIDATION=0: they predict and score their
own cases (or need only epoch seconds), so nnU-Net's final validation of each model (its spawned export and evaluation
workers) would be time spent on results nobody reads. Unset, these trainers validate as nnU-Net does; `nnUNetv2_train
... --val` validates a benchmark model afterwards.

Every short run seeds torch, numpy and Python's `random` from NNUNET_DISTILLDSM_SEED when it is set. nnU-Net's
augmentation workers seed themselves from the OS (nnU-Net passes no seeds), so only with nnUNet_n_proc_DA=0
(augmentation in the main process) does the seed cover them. Short runs save checkpoint_latest after every epoch,
so `--c` resumes any interrupted run.
"""
import dataclasses
import functools
import os
import random
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from benchmarks.wall_clock import EPOCH_CAP, WallClockBudget
from nnunet_distilldsm.trainers import TRAINERS as USER_TRAINERS
from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock

SEED_VARIABLE = "NNUNET_DISTILLDSM_SEED"
EPOCHS_VARIABLE = "NNUNET_DISTILLDSM_EPOCHS"
FINAL_VALIDATION_VARIABLE = "NNUNET_DISTILLDSM_FINAL_VALIDATION"  # "0": skip nnU-Net's final validation
PEAK_GPU_MEMORY_LINE = "peak GPU memory allocated in training:"
# epochs (None: from EPOCHS_VARIABLE), iterations per epoch, validation iterations per epoch
BUDGETS = {"tiny": (2, 4, 2), "demo": (10, 25, 5), "bench": (25, 25, 5), "calib": (2, 25, 5), "timed": (None, 25, 5),
           "from2d_bench": (5, 25, 5), "from2d_tiny": (1, 4, 2),  # from2d: fine-tunes of 20% of _bench (_tiny: 50%)
           "from2d_timed": (None, 25, 5), "timedStart": (None, 25, 5),  # equal-time: a 2d model and its fine-tune
           "wallclock": (EPOCH_CAP, 25, 5)}  # until the wall-clock budget is spent


def seed_from_environment():
    """Seed torch, numpy and random from SEED_VARIABLE; return the seed (None when unset)."""
    value = os.environ.get(SEED_VARIABLE)
    if value is None:
        return None
    seed = int(value)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def epochs_from_environment(trainer_name: str) -> int:
    value = os.environ.get(EPOCHS_VARIABLE, "")
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"{trainer_name} trains for {EPOCHS_VARIABLE} epochs (a whole number >= 1), got "
                           f"{value!r}: set it, or use a trainer with a fixed budget (e.g. the _bench variant). "
                           f"`python -m benchmarks benchmark --profile equal-time` sets it for you")
    return int(value)


def shortened(base: type, budget: str) -> type:
    """`base` with a short training budget, named `<base>_<budget>`."""
    epochs, iterations, val_iterations = BUDGETS[budget]
    name = trainer_name(base.__name__, budget)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        seed = seed_from_environment()
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs if epochs is not None else epochs_from_environment(name)
        self.num_iterations_per_epoch = iterations
        self.num_val_iterations_per_epoch = val_iterations
        self.save_every = 1
        self.print_to_log_file(f"{name}: {self.num_epochs} epochs x {iterations} iterations, seed {seed} "
                               f"(augmentation workers unseeded unless nnUNet_n_proc_DA=0)")

    def on_train_end(self):
        if self.device.type == "cuda":  # nnU-Net logs no memory figure; `epoch-speed` reads this line
            peak_mib = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
            self.print_to_log_file(f"{PEAK_GPU_MEMORY_LINE} {peak_mib:.0f} MiB")
        base.on_train_end(self)

    def perform_actual_validation(self, save_probabilities: bool = False):
        if os.environ.get(FINAL_VALIDATION_VARIABLE) == "0":
            self.print_to_log_file(f"final validation skipped ({FINAL_VALIDATION_VARIABLE}=0); run nnUNetv2_train "
                                   f"with --val and without it to validate this model")
            return
        base.perform_actual_validation(self, save_probabilities)

    doc = f"{base.__name__}, {epochs if epochs is not None else EPOCHS_VARIABLE} epochs x {iterations} iterations."
    return type(name, (base,), {"__init__": __init__, "on_train_end": on_train_end,
                                "perform_actual_validation": perform_actual_validation, "__module__": __name__,
                                "__qualname__": name, "__doc__": doc, "iterations_per_epoch": iterations})


def wall_clocked(base: type) -> type:
    """`base` trained for a wall-clock budget, 25 iterations an epoch, named `<base>_wallclock`."""
    short = shortened(base, "wallclock")
    doc = f"{base.__name__}, epochs of 25 iterations until the wall-clock budget is spent."
    return type(short.__name__, (WallClockBudget, short), {"__module__": __name__, "__qualname__": short.__name__,
                                                           "__doc__": doc})


def ablation(name: str, base: type, doc: str, **changes) -> type:
    """A trainer whose recipe is `base`'s with `changes`, named `name`."""
    return type(name, (base,), {"recipe": dataclasses.replace(base.recipe, **changes), "__doc__": doc,
                                "__module__": __name__, "__qualname__": name})


# Measured on one module per block, unless they name their placement ("perConv": a module after every conv,
# the default's network, under the name its benchmark rows were trained with).
ABLATIONS = {t.__name__: t for t in (
    ablation("DistillDSMTrainer_alpha025", DistillDSMTrainer_perBlock, "alpha 1/4.", alpha=0.25),
    ablation("DistillDSMTrainer_slicesAsChannels", DistillDSMTrainer_perBlock,
             "The modules on a network whose first conv also sees each slice's +-2 neighbours.", input_neighbours=2),
    ablation("DistillDSMTrainer_stockOversampling", DistillDSMTrainer_perBlock,
             "nnU-Net's own foreground rule (the last 33% of a batch): no slab forced at one slab per batch.",
             oversample_probabilistically=False),
    ablation("DistillDSMTrainer_2slabs", DistillDSMTrainer_perBlock, "At least 2 slabs per batch, each shallower.",
             slabs_per_batch=2),
    ablation("DistillDSMTrainer_3slabs", DistillDSMTrainer_perBlock, "At least 3 slabs per batch.", slabs_per_batch=3),
    ablation("DistillDSMTrainer_slab4", DistillDSMTrainer_perBlock, "Slabs of 4 slices.", slab_depth=4),
    ablation("DistillDSMTrainer_slab8", DistillDSMTrainer_perBlock, "Slabs of 8 slices.", slab_depth=8),
    ablation("DistillDSMTrainer_slab16", DistillDSMTrainer_perBlock, "Slabs of 16 slices.", slab_depth=16),
    ablation("DistillDSMTrainer_identityStart", DistillDSMTrainer_perBlock,
             "For from-2d: the modules start as identity convs.", module_start="identity"),
    ablation("DistillDSMTrainer_identityStartSeg", DistillDSMTrainer_perBlock,
             "The same, in its own results folder: started by `from-2d --keep-seg-layers`.", module_start="identity"),
    ablation("DistillDSMTrainer_perConv", DistillDSMTrainer, "DistillDSMTrainer's recipe."),
    ablation("DistillDSMTrainer_perConvAlpha1", DistillDSMTrainer, "A module after every conv, alpha 1.", alpha=1.0),
    ablation("DistillDSMTrainer_perConvStockOversampling", DistillDSMTrainer, "As _stockOversampling.",
             oversample_probabilistically=False),
    ablation("DistillDSMTrainer_perConv2slabs", DistillDSMTrainer, "As _2slabs.", slabs_per_batch=2),
    ablation("DistillDSMTrainer_perConv3slabs", DistillDSMTrainer, "As _3slabs.", slabs_per_batch=3),
)}
globals().update(ABLATIONS)  # importable by name, as nnU-Net and pickle reach a class
RECIPES: Dict[str, type] = {"nnUNetTrainer": nnUNetTrainer, **USER_TRAINERS, **ABLATIONS}


def trainer_name(recipe: str, budget: Optional[str]) -> str:
    """nnU-Net's name of the trainer of (recipe, budget): the recipe itself without a budget (nnU-Net's own runs)."""
    if recipe not in RECIPES or (budget is not None and budget not in BUDGETS):
        raise KeyError(f"no benchmark trainer for recipe {recipe!r} and budget {budget!r}: recipes "
                       f"{sorted(RECIPES)}, budgets {sorted(BUDGETS)}")
    return recipe if budget is None else f"{recipe}_{budget}"


class Model(NamedTuple):
    """A benchmark row: its label, its trainer as (recipe, budget), nnU-Net's configuration and the predictor."""
    label: str
    recipe: str
    budget: Optional[str]
    configuration: str = "2d"
    predictor: str = "stock"  # or "whole-stack" (nnunet_distilldsm.whole_stack_predictor)

    @property
    def trainer(self) -> str:
        return trainer_name(self.recipe, self.budget)

    def with_budget(self, budget: Optional[str]) -> "Model":
        return self._replace(budget=budget)


@functools.lru_cache(maxsize=None)
def budgeted(recipe: str, budget: str) -> type:
    """The class `<recipe>_<budget>`, built the first time it is asked for and the same object after: a study
    builds the few pairs it trains, not every recipe at every budget."""
    cls = RECIPES[recipe]
    return wall_clocked(cls) if budget == "wallclock" else shortened(cls, budget)


def split_trainer_name(name: str) -> Optional[Tuple[str, str]]:
    """(recipe, budget) of a budgeted trainer's name, or None."""
    for budget in sorted(BUDGETS, key=len, reverse=True):  # "from2d_tiny" before "tiny"
        recipe = name[:-len(budget) - 1]
        if name.endswith(f"_{budget}") and recipe in RECIPES:
            return recipe, budget
    return None


def find_trainer(name: str) -> Optional[type]:
    """The class of a trainer name the benchmark uses (the user's, an ablation, a budgeted one); None for others."""
    if name in RECIPES:
        return RECIPES[name]
    pair = split_trainer_name(name)
    return budgeted(*pair) if pair else None


def __getattr__(name: str) -> type:
    """`budget_trainers.<recipe>_<budget>`: how nnU-Net's lookup (hasattr on the shim module) and pickle reach a
    budgeted class."""
    pair = split_trainer_name(name)
    if pair is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return budgeted(*pair)
