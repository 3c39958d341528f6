"""Recompute against keep: each Distill DSM network with its module outputs recomputed in backward (as trained)
and kept for backward, against nnU-Net 2d, side by side on nnU-Net's planned network for one slice size.

    python -m benchmarks.checks.outputs_kept SIZE ROUNDS [WORKDIR]    (docs/results.md: 128 7)
"""
import sys

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from benchmarks.network_speed import BASELINE, interleaved_seconds, summarize, table
from benchmarks.planned import planned_plans, trainer_network
from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock

size, rounds = int(sys.argv[1]), int(sys.argv[2])
plans = planned_plans(size, workdir=sys.argv[3] if len(sys.argv) > 3 else None)  # None: a temporary folder
torch.manual_seed(0)
nets = {BASELINE: (trainer_network(nnUNetTrainer, plans, "2d"), False)}
for label, t in (("default", DistillDSMTrainer), ("per block", DistillDSMTrainer_perBlock)):
    nets[label] = (trainer_network(t, plans, "2d"), True)
    kept = trainer_network(t, plans, "2d")
    kept.recompute_module_outputs = False
    nets[label + ", outputs kept"] = (kept, True)
x = torch.randn(1, 1, 8, size, size)
print(table({size: summarize(nets, x, interleaved_seconds(nets, x, rounds))}))
