"""The plans nnU-Net's own planner writes for slices of a given size, and the networks trainers build from them.

A speed comparison is only as real as the networks it compares: these come from nnU-Net's
fingerprint extraction and default `ExperimentPlanner` run on a few generated volumes of
(depth, size, size) voxels, so the 2d network, its patch and its batch are what a user's
dataset of such slices would get.
"""
import json
import os
import shutil
import tempfile
from typing import Optional

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from benchmarks.nnunet_commands import run_nnunet
from benchmarks.synthetic import write_dataset

DATASET_ID = 989  # any id: each plan has a tree of its own


def planned_plans(size: int, depth: int = 16, workdir: Optional[str] = None, spacing=(3.0, 1.0, 1.0)) -> dict:
    """nnU-Net's plans (nnUNetPlans.json as a dict) for volumes of `depth` slices of size x size voxels at
    `spacing` (z, y, x in mm).

    `workdir` keeps the raw data and plans for the next call (a temporary folder when None)."""
    if size < 16:
        raise ValueError(f"slice size must be at least 16 voxels, got {size}")
    dataset_id = DATASET_ID
    name = f"Planned{size}x{depth}z{spacing[0]:g}".replace(".", "p")
    with tempfile.TemporaryDirectory() as scratch:
        root = os.path.join(workdir or scratch, name)  # one nnU-Net tree per plan: ids repeat across them
        raw, preprocessed = os.path.join(root, "raw"), os.path.join(root, "preprocessed")
        plans_file = os.path.join(preprocessed, f"Dataset{dataset_id:03d}_{name}", "nnUNetPlans.json")
        if not os.path.isfile(plans_file):
            shutil.rmtree(root, ignore_errors=True)  # what an interrupted call left: generated data only
            write_dataset(raw, dataset_id, name, n_train=2, n_test=0, shape=(depth, size, size), spacing=spacing)
            env = dict(os.environ, nnUNet_raw=raw, nnUNet_preprocessed=preprocessed,
                       nnUNet_results=os.path.join(root, "results"))
            run_nnunet(["nnUNetv2_extract_fingerprint", "-d", str(dataset_id), "-np", "1"], env, quiet=True)
            run_nnunet(["nnUNetv2_plan_experiment", "-d", str(dataset_id)], env, quiet=True)
        with open(plans_file) as f:
            return json.load(f)


def trainer_network(trainer: type, plans: dict, configuration: str, in_ch: int = 1,
                    classes: int = 3) -> torch.nn.Module:
    """The network `trainer` trains on `configuration` of `plans` (deep supervision on), built as it builds it:
    its `build_network_architecture` on the plans it trains with (`slab_plans` for the slab trainers)."""
    if trainer is not nnUNetTrainer:
        plans = trainer.slab_plans(plans, configuration)
    manager = PlansManager(plans)
    return trainer.build_network_architecture(manager, manager.get_configuration(configuration), in_ch, classes,
                                              True)
