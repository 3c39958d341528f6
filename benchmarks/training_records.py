"""What a trained model folder says about its training: epochs and seconds from nnU-Net's checkpoint log, what the
benchmark recorded beside it (commit, contention), and whether its network is still the one its trainer builds."""
import json
import os
from typing import Dict

import torch

from benchmarks.budget_trainers import find_trainer
from benchmarks.run_store import read_json


def training_record(model_folder: str, fold: int) -> dict:
    """Epochs, iterations and seconds in nnU-Net's training loop, from the final checkpoint's log: train_s
    sums the epochs' own seconds; wall_s runs from the first epoch's start to the last one's end, with the
    checkpoints and plots between epochs (and any interruption before a --c)."""
    ckpt = torch.load(os.path.join(model_folder, f"fold_{fold}", "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)
    log = ckpt["logging"]
    seconds = [e - s for s, e in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])]
    trainer = find_trainer(ckpt["trainer_name"])
    per_epoch = getattr(trainer, "iterations_per_epoch", 250)  # nnUNetTrainer's default
    return {"epochs": len(seconds), "iterations": len(seconds) * per_epoch, "train_s": float(sum(seconds)),
            "wall_s": float(log["epoch_end_timestamps"][-1] - log["epoch_start_timestamps"][0]),
            "epoch_s": [float(s) for s in seconds], "seeded": hasattr(trainer, "iterations_per_epoch")}


TRAINED_BY = "distilldsm_trained_by.json"  # beside nnU-Net's checkpoints: the commit and contention of a training


def trained_by(model_folder: str, fold: int) -> dict:
    """What the benchmark recorded when it trained this fold: trained_commit, contention; unknown for models
    trained before it recorded them."""
    path = os.path.join(model_folder, f"fold_{fold}", TRAINED_BY)
    return read_json(path) if os.path.isfile(path) else {"trained_commit": "unknown", "contention": None}


def changed_architecture(model_folder: str, trainer: str, config: str, plans: dict) -> Dict[str, tuple]:
    """{arch kwarg: (in the model folder's plans.json, as `trainer` plans it now)} for each that differs:
    a trainer whose recipe changed (e.g. a new default placement) would otherwise reuse the old model."""
    from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer
    cls = find_trainer(trainer)
    if cls is None:  # not one of the benchmark's trainers: nnU-Net's plans, as planned
        return {}
    now = cls.slab_plans(plans, config) if issubclass(cls, SlabTrainer) else plans
    # tuples as JSON has them
    now = json.loads(json.dumps(now["configurations"][config]["architecture"]["arch_kwargs"]))
    then = read_json(os.path.join(model_folder, "plans.json"))["configurations"][config]["architecture"]["arch_kwargs"]
    return {k: (then.get(k), now.get(k)) for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)}
