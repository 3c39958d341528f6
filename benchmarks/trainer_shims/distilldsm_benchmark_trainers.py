"""Shim for nnU-Net's `nnUNet_extTrainer` lookup of the benchmark's trainers (see nnunet_distilldsm/trainer_shims).
The benchmark is not installed: its repository goes on sys.path when the command's PYTHONPATH lacks it."""
import os
import sys

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)
from benchmarks.budget_trainers import find_trainer  # noqa: E402


def __getattr__(name: str) -> type:
    """An ablation or a budgeted trainer (`<recipe>_<budget>`, built when nnU-Net's lookup first asks for it)."""
    cls = find_trainer(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
