"""The laboratory beside the plugin: benchmarks, budgets and ablations, speed studies, statistics, dataset writers.

Not installed with the plugin (`pip install .` ships `nnunet_distilldsm` only); run from the repository root as
`python -m benchmarks COMMAND` (benchmarks/__main__.py). It uses the plugin's public API, and the plugin imports
nothing from here.
"""
import os
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trainer_dir() -> str:
    """The second nnUNet_extTrainer folder: the benchmark's short-budget and ablation trainers (budget_trainers.py)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer_shims")


def say(msg: str):
    """The laboratory's progress line, timestamped."""
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)
