"""Short training runs of each trainer, for tests, the demo and CPU benchmarks.

`_tiny`: 2 epochs of 4 iterations (tests). `_demo`: 10 epochs of 25 iterations (README demo).
`_bench`: 25 epochs of 25 iterations (the cpu-small benchmark). `_calib`: 2 epochs of 25, to
measure seconds per epoch. `_timed`: epochs from NNUNET_DISTILLDSM_EPOCHS (the benchmark's
equal-time profile sets them from each model's measured epoch time). `_wallclock`: as many epochs
as fit in NNUNET_DISTILLDSM_TRAIN_SECONDS of wall clock (wall_clock.py; the demo). Stock nnUNetTrainer gets
the same budgets, so comparisons are fair.

Every short run seeds torch, numpy and Python's `random` from NNUNET_DISTILLDSM_SEED when it
is set. nnU-Net's augmentation workers seed themselves from the OS (nnU-Net passes no seeds),
so only with nnUNet_n_proc_DA=0 (augmentation in the main process) does the seed cover them.
Short runs save checkpoint_latest after every epoch, so `--c` resumes any interrupted run.
"""
import os
import random

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_distilldsm.trainers.distill_dsm_trainer import DistillDSMTrainer, DistillDSMTrainer_perBlock
from nnunet_distilldsm.trainers.wall_clock import EPOCH_CAP, WallClockBudget
from nnunet_distilldsm.trainers.variants import ResidualDSMTrainer, DistillDSMTrainer_slab4, DistillDSMTrainer_slab8, \
    DistillDSMTrainer_slab16, SlicesAsChannelsTrainer, SlicesAsChannelsTrainer_k1, DistillDSMTrainer_stockOversampling, \
    DistillDSMTrainer_2slabs, DistillDSMTrainer_3slabs, DistillDSMTrainer_identityStart, DistillDSMTrainer_identityStartSeg, \
    DistillDSMTrainer_alpha025, DistillDSMTrainer_alpha1, DistillDSMTrainer_perConv, DistillDSMTrainer_slicesAsChannels, \
    DistillDSMTrainer_perConvAlpha1, DistillDSMTrainer_perConvStockOversampling, DistillDSMTrainer_perConv2slabs, \
    DistillDSMTrainer_perConv3slabs

SEED_VARIABLE = "NNUNET_DISTILLDSM_SEED"
EPOCHS_VARIABLE = "NNUNET_DISTILLDSM_EPOCHS"
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
                           f"`nnunet-distilldsm benchmark --profile equal-time` sets it for you")
    return int(value)


def shortened(base: type, budget: str) -> type:
    """`base` with a short training budget, named `<base>_<budget>`."""
    epochs, iterations, val_iterations = BUDGETS[budget]
    name = f"{base.__name__}_{budget}"

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
            self.print_to_log_file(f"{PEAK_GPU_MEMORY_LINE} {torch.cuda.max_memory_allocated(self.device) / 2 ** 20:.0f}"
                                   f" MiB")
        base.on_train_end(self)

    doc = f"{base.__name__}, {epochs if epochs is not None else EPOCHS_VARIABLE} epochs x {iterations} iterations."
    return type(name, (base,), {"__init__": __init__, "on_train_end": on_train_end, "__module__": __name__,
                                "__qualname__": name, "__doc__": doc, "iterations_per_epoch": iterations})


def wall_clocked(base: type) -> type:
    """`base` trained for a wall-clock budget, 25 iterations an epoch, named `<base>_wallclock`."""
    short = shortened(base, "wallclock")
    doc = f"{base.__name__}, epochs of 25 iterations until the wall-clock budget is spent."
    return type(short.__name__, (WallClockBudget, short), {"__module__": __name__, "__qualname__": short.__name__,
                                                           "__doc__": doc})


nnUNetTrainer_tiny = shortened(nnUNetTrainer, "tiny")
nnUNetTrainer_demo = shortened(nnUNetTrainer, "demo")
DistillDSMTrainer_tiny = shortened(DistillDSMTrainer, "tiny")
DistillDSMTrainer_perBlock_tiny = shortened(DistillDSMTrainer_perBlock, "tiny")  # epoch-speed's dry run
DistillDSMTrainer_demo = shortened(DistillDSMTrainer, "demo")
ResidualDSMTrainer_tiny = shortened(ResidualDSMTrainer, "tiny")
ResidualDSMTrainer_demo = shortened(ResidualDSMTrainer, "demo")
nnUNetTrainer_bench = shortened(nnUNetTrainer, "bench")
DistillDSMTrainer_bench = shortened(DistillDSMTrainer, "bench")
# one module per block, the default until issue 11: the committed "Distill DSM per block" rows of the studies
DistillDSMTrainer_perBlock_bench = shortened(DistillDSMTrainer_perBlock, "bench")
ResidualDSMTrainer_bench = shortened(ResidualDSMTrainer, "bench")
DistillDSMTrainer_slab4_bench = shortened(DistillDSMTrainer_slab4, "bench")  # the slab-sweep benchmark profile
DistillDSMTrainer_slab8_bench = shortened(DistillDSMTrainer_slab8, "bench")
DistillDSMTrainer_slab16_bench = shortened(DistillDSMTrainer_slab16, "bench")
# the slab-recipe benchmark profile: foreground oversampling and slabs per batch
DistillDSMTrainer_stockOversampling_bench = shortened(DistillDSMTrainer_stockOversampling, "bench")
DistillDSMTrainer_2slabs_bench = shortened(DistillDSMTrainer_2slabs, "bench")
DistillDSMTrainer_3slabs_bench = shortened(DistillDSMTrainer_3slabs, "bench")
# ... and on the default's network (slab-recipe-per-conv)
DistillDSMTrainer_perConvStockOversampling_bench = shortened(DistillDSMTrainer_perConvStockOversampling, "bench")
DistillDSMTrainer_perConv2slabs_bench = shortened(DistillDSMTrainer_perConv2slabs, "bench")
DistillDSMTrainer_perConv3slabs_bench = shortened(DistillDSMTrainer_perConv3slabs, "bench")
# the module-recipe benchmark profile: how much of each slice the modules distill, and where they sit
DistillDSMTrainer_alpha025_bench = shortened(DistillDSMTrainer_alpha025, "bench")
DistillDSMTrainer_alpha1_bench = shortened(DistillDSMTrainer_alpha1, "bench")
DistillDSMTrainer_perConv_bench = shortened(DistillDSMTrainer_perConv, "bench")
DistillDSMTrainer_slicesAsChannels_bench = shortened(DistillDSMTrainer_slicesAsChannels, "bench")
DistillDSMTrainer_perConvAlpha1_bench = shortened(DistillDSMTrainer_perConvAlpha1, "bench")
SlicesAsChannelsTrainer_tiny = shortened(SlicesAsChannelsTrainer, "tiny")
SlicesAsChannelsTrainer_demo = shortened(SlicesAsChannelsTrainer, "demo")
SlicesAsChannelsTrainer_bench = shortened(SlicesAsChannelsTrainer, "bench")
SlicesAsChannelsTrainer_k1_bench = shortened(SlicesAsChannelsTrainer_k1, "bench")
# fine-tunes started from a trained 2d model (`nnunet-distilldsm from-2d`), in their own results folders
DistillDSMTrainer_from2d_bench = shortened(DistillDSMTrainer, "from2d_bench")
DistillDSMTrainer_from2d_tiny = shortened(DistillDSMTrainer, "from2d_tiny")
DistillDSMTrainer_perBlock_from2d_bench = shortened(DistillDSMTrainer_perBlock, "from2d_bench")
DistillDSMTrainer_identityStart_from2d_bench = shortened(DistillDSMTrainer_identityStart, "from2d_bench")
DistillDSMTrainer_identityStartSeg_from2d_bench = shortened(DistillDSMTrainer_identityStartSeg, "from2d_bench")
# the equal-time benchmark profile: calibrate seconds per epoch, then train that model's share of the budget
nnUNetTrainer_calib = shortened(nnUNetTrainer, "calib")
DistillDSMTrainer_calib = shortened(DistillDSMTrainer, "calib")
DistillDSMTrainer_perBlock_calib = shortened(DistillDSMTrainer_perBlock, "calib")
ResidualDSMTrainer_calib = shortened(ResidualDSMTrainer, "calib")
nnUNetTrainer_timed = shortened(nnUNetTrainer, "timed")
DistillDSMTrainer_timed = shortened(DistillDSMTrainer, "timed")
DistillDSMTrainer_perBlock_timed = shortened(DistillDSMTrainer_perBlock, "timed")
ResidualDSMTrainer_timed = shortened(ResidualDSMTrainer, "timed")
nnUNetTrainer_timedStart = shortened(nnUNetTrainer, "timedStart")  # the 2d model a from-2d run starts from
DistillDSMTrainer_from2d_timed = shortened(DistillDSMTrainer, "from2d_timed")
DistillDSMTrainer_perBlock_from2d_timed = shortened(DistillDSMTrainer_perBlock, "from2d_timed")
SlicesAsChannelsTrainer_calib = shortened(SlicesAsChannelsTrainer, "calib")
SlicesAsChannelsTrainer_timed = shortened(SlicesAsChannelsTrainer, "timed")
# the demo, and equal training time measured by the trainers' own clocks
nnUNetTrainer_wallclock = wall_clocked(nnUNetTrainer)
DistillDSMTrainer_wallclock = wall_clocked(DistillDSMTrainer)
DistillDSMTrainer_perBlock_wallclock = wall_clocked(DistillDSMTrainer_perBlock)
ResidualDSMTrainer_wallclock = wall_clocked(ResidualDSMTrainer)
SlicesAsChannelsTrainer_wallclock = wall_clocked(SlicesAsChannelsTrainer)
DistillDSMTrainer_alpha025_wallclock = wall_clocked(DistillDSMTrainer_alpha025)  # equal-wallclock-module-recipe
DistillDSMTrainer_alpha1_wallclock = wall_clocked(DistillDSMTrainer_alpha1)
DistillDSMTrainer_perConv_wallclock = wall_clocked(DistillDSMTrainer_perConv)
DistillDSMTrainer_slicesAsChannels_wallclock = wall_clocked(DistillDSMTrainer_slicesAsChannels)
DistillDSMTrainer_perConvAlpha1_wallclock = wall_clocked(DistillDSMTrainer_perConvAlpha1)
