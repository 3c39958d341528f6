"""Shim for nnU-Net's `nnUNet_extTrainer` lookup of the benchmark's trainers (see nnunet_distilldsm/trainer_shims)."""
from nnunet_distilldsm.benchmarks.budget_trainers import *  # noqa: F401,F403
