"""The modules' memory passes, side by side in one run: each network with the plugin's modules (pad + cat) and with
the one-write arithmetic they replaced (benchmarks/one_write_depth_shift.py), against nnU-Net 2d, on nnU-Net's
planned 2d networks.

    python -m benchmarks.checks.module_copies [--sizes 128 256] [--rounds 7] [--workdir DIR]
"""
import argparse

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from benchmarks.network_speed import BASELINE, interleaved_seconds, summarize, table
from benchmarks.one_write_depth_shift import with_one_write_modules
from benchmarks.planned import planned_plans, trainer_network
from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock, ResidualDSMTrainer


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--workdir")
    a = p.parse_args()
    results = {}
    for size in a.sizes:
        plans = planned_plans(size, workdir=a.workdir)
        torch.manual_seed(0)
        nets = {BASELINE: (trainer_network(nnUNetTrainer, plans, "2d"), False)}
        for label, trainer in (("default", DistillDSMTrainer), ("per block", DistillDSMTrainer_perBlock),
                               ("Residual DSM", ResidualDSMTrainer)):
            net = trainer_network(trainer, plans, "2d")
            nets[f"{label}, one write"] = (with_one_write_modules(net), True)
            nets[f"{label}, pad + cat"] = (net, True)
        x = torch.randn(1, 1, a.depth, size, size)
        results[size] = summarize(nets, x, interleaved_seconds(nets, x, a.rounds))
    print(f"{a.depth} slices, {torch.get_num_threads()} threads, {a.rounds} rounds\n{table(results)}")


if __name__ == "__main__":
    main()
