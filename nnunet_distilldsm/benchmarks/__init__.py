"""Side-by-side measurements (ratios in one run, never absolute times in isolation)."""
import os


def trainer_dir() -> str:
    """The second nnUNet_extTrainer folder: the benchmark's short-budget and ablation trainers (budget_trainers.py)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer_shims")
