"""Distill DSM (Maheshwari et al.) as an nnU-Net v2 plugin."""
import os

__version__ = "0.1.0"


def trainer_dir() -> str:
    """The folder to put in nnUNet_extTrainer: thin shims that import the installed trainers."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer_shims")
