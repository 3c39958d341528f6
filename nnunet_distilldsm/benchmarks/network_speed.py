"""Forward+backward time per voxel of slab networks against the plain planned 2D network.

All networks see the same slab (B, C, D, H, W), interleaved round by round in one process
with the same threads; the median of each is reported, and its ratio to the 2D network.
Also the memory a forward pass leaves held for backward (malloc's count, see train_step.py),
and its ratio to the 2D network's.

    nnunet-distilldsm network-speed [--plans nnUNetPlans.json] [--depth 8] [--rounds 7]
"""
import argparse
import gc
import json
import statistics
import time
from typing import Dict

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_distilldsm.benchmarks.train_step import allocated_mb
from nnunet_distilldsm.trainers.slab_plans import make_slab_plans

# What nnU-Net 2.8's planner writes for a 2d configuration with a 128 x 128 patch.
DEFAULT_2D = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 512, 512],
                    "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 6,
                    "strides": [[1, 1]] + [[2, 2]] * 5, "n_conv_per_stage": [2] * 6,
                    "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


def plans_around(arch_2d: dict, patch, batch_size: int, depth: int) -> dict:
    return {"configurations": {"2d": {"patch_size": list(patch), "batch_size": batch_size, "architecture": arch_2d}},
            "original_median_shape_after_transp": [depth, *patch]}


def build(arch: dict, in_ch: int, classes: int):
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 in_ch, classes, deep_supervision=True)
    return net


def network_input(x: torch.Tensor, slab: bool) -> torch.Tensor:
    """The slab (B, C, D, H, W) as the network takes it: as is, or its slices as a 2D batch."""
    return x if slab else x.transpose(1, 2).reshape(-1, *x.shape[1:2], *x.shape[3:])


def step_seconds(net, x, slab: bool) -> float:
    """One forward+backward pass (deep supervision on, as in training)."""
    inp = network_input(x, slab)
    t = time.perf_counter()
    out = net(inp)
    sum(o.float().mean() for o in out).backward()
    return time.perf_counter() - t


def held_mb(net, x, slab: bool) -> float:
    """MB allocated by a forward pass and still held when it returns: what autograd keeps for backward."""
    inp = network_input(x, slab)
    gc.collect()
    before = allocated_mb()
    out = net(inp)
    held = allocated_mb() - before
    sum(o.float().mean() for o in out).backward()
    return held


def measure(arch_2d: dict = None, patch=(128, 128), depth: int = 8, batch: int = 1, in_ch: int = 1,
            classes: int = 3, rounds: int = 7, variants: Dict[str, dict] = None,
            reduce=statistics.median) -> Dict[str, dict]:
    """Seconds per voxel of each network (median over rounds, or `reduce`) and its ratio to the 2D network."""
    arch_2d = arch_2d or DEFAULT_2D
    variants = variants or {"distill, per block": dict(dsm="distill", placement="block"),
                            "distill, per block, outputs kept": dict(dsm="distill", placement="block", recompute=False),
                            "distill, per conv": dict(dsm="distill", placement="conv"),
                            "residual, per block": dict(dsm="residual", placement="block")}
    plans = plans_around(arch_2d, patch, depth * batch, depth)
    nets = {"2d": (build(arch_2d, in_ch, classes), False)}
    for name, kw in variants.items():
        kw = dict(kw)
        recompute = kw.pop("recompute", True)  # False: module outputs kept for backward (see recompute.py)
        slab = make_slab_plans(plans, "2d", slab_depth=depth, **kw)["configurations"]["2d"]["architecture"]
        nets[name] = (build(slab, in_ch, classes), True)
        nets[name][0].recompute_module_outputs = recompute
    torch.manual_seed(0)
    x = torch.randn(batch, in_ch, depth, *patch)
    times = {k: [] for k in nets}
    for r in range(rounds + 1):
        for name, (net, slab) in nets.items():
            net.zero_grad(set_to_none=True)
            s = step_seconds(net, x, slab)
            if r:  # round 0 warms up
                times[name].append(s)
    held = {name: held_mb(net, x, slab) for name, (net, slab) in nets.items()}
    voxels = x[:, 0].numel()
    base = reduce(times["2d"])
    return {k: {"s_per_voxel": reduce(v) / voxels, "ratio_to_2d": reduce(v) / base,
                "held_mb": held[k], "held_ratio_to_2d": held[k] / held["2d"],
                "params": sum(p.numel() for p in nets[k][0].parameters())} for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="nnunet-distilldsm network-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", help="an nnU-Net plans file whose 2d configuration to use (default: a 128x128 plan)")
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args(argv)
    arch, patch = DEFAULT_2D, (128, 128)
    if a.plans:
        cfg = json.load(open(a.plans))["configurations"]["2d"]
        arch, patch = cfg["architecture"], tuple(cfg["patch_size"])
    res = measure(arch, patch, a.depth, a.batch, rounds=a.rounds)
    print(f"slab {a.batch} x {a.depth} x {patch[0]} x {patch[1]}, {torch.get_num_threads()} threads, "
          f"median of {a.rounds} forward+backward passes")
    print("| network | params | s/voxel | time vs 2d | MB held for backward | memory vs 2d |\n|---|---|---|---|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v['params']:,} | {v['s_per_voxel']:.3e} | {v['ratio_to_2d']:.3f} | {v['held_mb']:.1f} | "
              f"{v['held_ratio_to_2d']:.3f} |")
    return res


if __name__ == "__main__":
    main()
