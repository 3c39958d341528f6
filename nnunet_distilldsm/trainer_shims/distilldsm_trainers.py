"""Shim for nnU-Net's `nnUNet_extTrainer` lookup, which imports this file as a top-level module
and forgets it afterwards. The classes themselves live in the installed package, so their
identity, pickling and the network class named in plans stay stable."""
from nnunet_distilldsm.trainers import *  # noqa: F401,F403
