"""nnU-Net trainers that train the slab network on the planned 2d configuration.

`__all__` is derived, not listed: every nnU-Net trainer class defined in this package's
trainer modules. The nnUNet_extTrainer shim imports `*`, so a new trainer needs no registration.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_distilldsm.trainers import distill_dsm_trainer, short_runs, variants

TRAINER_MODULES = (distill_dsm_trainer, variants, short_runs)
TRAINERS = {name: obj for module in TRAINER_MODULES for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, nnUNetTrainer) and obj.__module__ == module.__name__}
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
