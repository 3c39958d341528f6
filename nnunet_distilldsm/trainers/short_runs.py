"""Short training runs of each trainer, for tests, the demo and CPU benchmarks.

`_tiny`: 2 epochs of 4 iterations (tests). `_demo`: 10 epochs of 25 iterations (README demo).
`_bench`: 25 epochs of 25 iterations (the cpu-small benchmark). Stock nnUNetTrainer gets the same budgets, so comparisons are fair.
Short runs save checkpoint_latest after every epoch, so `--c` resumes any interrupted run.
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_distilldsm.trainers.distill_dsm_trainer import DistillDSMTrainer
from nnunet_distilldsm.trainers.variants import ResidualDSMTrainer, DistillDSMTrainer_slab4, DistillDSMTrainer_slab8, \
    DistillDSMTrainer_slab16

BUDGETS = {"tiny": (2, 4, 2), "demo": (10, 25, 5), "bench": (25, 25, 5)}  # epochs, iterations per epoch, validation iterations


def shortened(base: type, budget: str) -> type:
    """`base` with a short training budget, named `<base>_<budget>`."""
    epochs, iterations, val_iterations = BUDGETS[budget]

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs
        self.num_iterations_per_epoch = iterations
        self.num_val_iterations_per_epoch = val_iterations
        self.save_every = 1

    name = f"{base.__name__}_{budget}"
    return type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name,
                                "__doc__": f"{base.__name__}, {epochs} epochs x {iterations} iterations."})


nnUNetTrainer_tiny = shortened(nnUNetTrainer, "tiny")
nnUNetTrainer_demo = shortened(nnUNetTrainer, "demo")
DistillDSMTrainer_tiny = shortened(DistillDSMTrainer, "tiny")
DistillDSMTrainer_demo = shortened(DistillDSMTrainer, "demo")
ResidualDSMTrainer_tiny = shortened(ResidualDSMTrainer, "tiny")
ResidualDSMTrainer_demo = shortened(ResidualDSMTrainer, "demo")
nnUNetTrainer_bench = shortened(nnUNetTrainer, "bench")
DistillDSMTrainer_bench = shortened(DistillDSMTrainer, "bench")
ResidualDSMTrainer_bench = shortened(ResidualDSMTrainer, "bench")
DistillDSMTrainer_slab4_bench = shortened(DistillDSMTrainer_slab4, "bench")  # the slab-sweep benchmark profile
DistillDSMTrainer_slab8_bench = shortened(DistillDSMTrainer_slab8, "bench")
DistillDSMTrainer_slab16_bench = shortened(DistillDSMTrainer_slab16, "bench")
