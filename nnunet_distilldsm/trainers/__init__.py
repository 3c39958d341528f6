"""The trainers nnU-Net finds through `nnunet-distilldsm trainer-dir`: the slab trainers a user picks.

`__all__` is derived, not listed: every nnU-Net trainer class defined in the two trainer modules. The
nnUNet_extTrainer shim imports `*`. Short-budget and ablation trainers live in benchmarks.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_distilldsm.trainers import distill_dsm_trainer, variants
from nnunet_distilldsm.trainers.slab_plans import SlabRecipe  # noqa: F401  (for variants of one's own)

TRAINER_MODULES = (distill_dsm_trainer, variants)
TRAINERS = {name: obj for module in TRAINER_MODULES for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, nnUNetTrainer) and obj.__module__ == module.__name__}
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
