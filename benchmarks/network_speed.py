"""Training-step time, memory and FLOPs of the trainers' networks against nnU-Net 2d's, side by side.

Each network is built the way its trainer builds it (`build_network_architecture` on the plans
the trainer trains with) from the 2d plans nnU-Net's planner writes for slices of each size
(`planned.py`). All see the same slab of D slices (nnU-Net 2d sees its slices as a batch), round
by round in one process with the same threads. Per network: seconds of a training step as nnU-Net
takes it (forward, backward, gradient clipping, SGD: train_step.TrainingStep, float32) and their
ratio to nnU-Net 2d's, of the fastest rounds (and of the medians); the forward FLOP ratio
(`torch.utils.flop_counter`), the floor the time ratio can approach; and the memory a forward
pass leaves held for backward, and its ratio.

    python -m benchmarks network-speed [--sizes 128 256] [--depth 8] [--rounds 7] [--workdir DIR] [--json PATH]
"""
import argparse
import gc
import json
import statistics
from typing import Dict, Optional, Sequence

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from benchmarks.metrics import forward_flops
from benchmarks.planned import planned_plans, trainer_network
from benchmarks.train_step import TrainingStep, allocated_mb
from nnunet_distilldsm.trainers import (
    DistillDSMTrainer,
    DistillDSMTrainer_perBlock,
    ResidualDSMTrainer,
    SlicesAsChannelsTrainer,
)

BASELINE = "nnU-Net 2d"
NETWORKS = {BASELINE: nnUNetTrainer, "Distill DSM (default, a module after every conv)": DistillDSMTrainer,
            "Distill DSM, one module per block": DistillDSMTrainer_perBlock, "Residual DSM": ResidualDSMTrainer,
            "slices as channels (+-2)": SlicesAsChannelsTrainer}


def is_slab_network(trainer: type) -> bool:
    return trainer is not nnUNetTrainer


def network_input(x: torch.Tensor, slab: bool) -> torch.Tensor:
    """The slab (B, C, D, H, W) as the network takes it: as is, or its slices as a 2D batch."""
    return x if slab else x.transpose(1, 2).reshape(-1, *x.shape[1:2], *x.shape[3:])


def held_mb(net, x, slab: bool) -> float:
    """MB allocated by a forward pass and still held when it returns: what autograd keeps for backward."""
    inp = network_input(x, slab)
    gc.collect()
    before = allocated_mb()
    out = net(inp)
    held = allocated_mb() - before
    sum(o.float().mean() for o in out).backward()
    return held


def interleaved_seconds(nets: Dict[str, tuple], x: torch.Tensor, rounds: int) -> Dict[str, list]:
    """Training-step seconds of each (network, is_slab) over `rounds`, after one warm-up round. Each round
    starts one network later, so no network always runs first (after the others' memory has been freed)."""
    steps = {name: TrainingStep(name, net, network_input(x, slab)) for name, (net, slab) in nets.items()}
    names, times = list(nets), {k: [] for k in nets}
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            s = steps[name].timed_step()[0]
            if r:
                times[name].append(s)
    return times


def summarize(nets: Dict[str, tuple], x: torch.Tensor, times: Dict[str, list], baseline: str = BASELINE) -> dict:
    """Per network: fastest and median seconds per voxel with their ratios to `baseline`'s, held MB, forward
    FLOPs and parameters, each with its ratio. The fastest round is the cost figure: on a shared machine other
    processes only ever add time."""
    held = {name: held_mb(net, x, slab) for name, (net, slab) in nets.items()}
    flops = {name: forward_flops(net, network_input(x, slab)) for name, (net, slab) in nets.items()}
    voxels, fastest, median = x[:, 0].numel(), min(times[baseline]), statistics.median(times[baseline])
    return {k: {"s_per_voxel": min(v) / voxels, "ratio_to_2d": min(v) / fastest,
                "median_ratio_to_2d": statistics.median(v) / median, "seconds": v,
                "held_mb": held[k], "held_ratio_to_2d": held[k] / held[baseline],
                "flops": flops[k], "flop_ratio_to_2d": flops[k] / flops[baseline],
                "params": sum(p.numel() for p in nets[k][0].parameters())} for k, v in times.items()}


def measure(plans: dict, depth: int = 8, batch: int = 1, in_ch: int = 1, classes: int = 3, rounds: int = 7,
            networks: Optional[Dict[str, type]] = None) -> Dict[str, dict]:
    """`summarize` for each network; `networks` maps a label to a trainer class (nnU-Net 2d is always measured)."""
    networks = {BASELINE: nnUNetTrainer, **(networks or NETWORKS)}
    torch.manual_seed(0)
    nets = {name: (trainer_network(t, plans, "2d", in_ch, classes), is_slab_network(t))
            for name, t in networks.items()}
    x = torch.randn(batch, in_ch, depth, *plans["configurations"]["2d"]["patch_size"])
    return summarize(nets, x, interleaved_seconds(nets, x, rounds))


def table(results: Dict[int, Dict[str, dict]]) -> str:
    rows = ["| slices | network | params | time vs 2d (fastest) | (median) | forward FLOPs vs 2d | "
            "time - FLOP ratio | MB held for backward | memory vs 2d |", "|---|---|---|---|---|---|---|---|---|"]
    for size, res in results.items():
        for k, v in res.items():
            rows.append(f"| {size} x {size} | {k} | {v['params']:,} | {v['ratio_to_2d']:.3f} | "
                        f"{v['median_ratio_to_2d']:.3f} | {v['flop_ratio_to_2d']:.3f} | "
                        f"{v['ratio_to_2d'] - v['flop_ratio_to_2d']:+.3f} | "
                        f"{v['held_mb']:.1f} | {v['held_ratio_to_2d']:.3f} |")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None):
    p = argparse.ArgumentParser(prog="python -m benchmarks network-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="slice sizes to plan (default 128 256)")
    p.add_argument("--depth", type=int, default=8, help="slices per slab (default 8)")
    p.add_argument("--rounds", type=int, default=7, help="timed training steps per network (default 7)")
    p.add_argument("--workdir", help="keep the generated data and nnU-Net's plans here for the next run")
    p.add_argument("--json", help="write the results to this file")
    a = p.parse_args(argv)
    results = {size: measure(planned_plans(size, workdir=a.workdir), a.depth, rounds=a.rounds) for size in a.sizes}
    print(f"one slab of {a.depth} slices per network, nnU-Net's planned 2d networks, {torch.get_num_threads()} "
          f"threads, fastest and median of {a.rounds} training steps, interleaved\n{table(results)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"depth": a.depth, "rounds": a.rounds, "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
