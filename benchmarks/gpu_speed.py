"""Training-step time and peak GPU memory of Distill DSM against nnU-Net 2d and 3d_fullres, on one GPU.

network_speed.py measures on CPU threads in float32; nnU-Net trains on a GPU under float16
autocast (and, by default on CUDA, torch.compile), where the depth modules' small convs and
copies, and what autograd keeps for backward, cost differently. This script times what nnU-Net's
trainer does per iteration (train_step.TrainingStep: zero_grad, forward and loss under autocast, scaled
backward, unscale, gradient clipping at 12, SGD step), with cudnn.benchmark on, as nnU-Net sets it.

The networks are the ones the trainers train: nnU-Net's planner plans generated volumes of
`--volume-depth` slices of `--size` x `--size` voxels at 1 mm (`planned.py`), and each network is
built by its trainer's `build_network_architecture` from the plans it trains with
(`SlabTrainer.slab_plans` for the slab trainers):

    2d            nnU-Net 2d, a batch of B*D slices (B*D, 1, H, W)
    Distill DSM   DistillDSMTrainer, B slabs of D slices (B, 1, D, H, W): the same voxels as 2d
    per block     DistillDSMTrainer_perBlock, the same slabs
    Residual DSM  ResidualDSMTrainer, the same slabs
    3d_fullres    nnU-Net 3d_fullres, its planned batch and patch

Networks are interleaved step by step after the warm-up; each reports the median and IQR
of seconds per step, seconds per voxel and its ratio to 2d's, and its peak memory (its
weights, optimizer state and input plus the step's peak allocation over its start, in MiB)
and the ratio to 2d's. With --compile the slab networks are compiled with fullgraph=True
first (a graph break is printed as FAIL, then they fall back to nnU-Net's plain compile).

    python -m benchmarks.gpu_speed [--device cuda] [--depth 12] [--batch 2] [--size 256]
        [--volume-depth 128] [--warmup 5] [--rounds 20] [--no-amp] [--compile] [--json PATH] [--workdir DIR]
    (or: python -m benchmarks gpu-speed ...)
"""
import argparse
import json
import math
import platform
import statistics

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from benchmarks.planned import planned_plans, trainer_network
from benchmarks.train_step import TrainingStep
from nnunet_distilldsm.architectures.slab_unet import SlabUNet
from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock, ResidualDSMTrainer

SLAB_TRAINERS = {"Distill DSM": DistillDSMTrainer, "per block": DistillDSMTrainer_perBlock,
                 "Residual DSM": ResidualDSMTrainer}
NETWORKS = (*SLAB_TRAINERS, "3d_fullres")  # each measured against "2d"


def quartiles(values):
    return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3


def networks_and_inputs(plans: dict, depth: int, batch: int, classes: int = 3) -> dict:
    """{name: (network, input)}: 2d and the slab networks on the same voxels, 3d_fullres on its planned batch."""
    patch = plans["configurations"]["2d"]["patch_size"]
    full = plans["configurations"]["3d_fullres"]
    torch.manual_seed(0)
    slab = torch.randn(batch, 1, depth, *patch)
    return {"2d": (trainer_network(nnUNetTrainer, plans, "2d", 1, classes),
                   slab.transpose(1, 2).reshape(batch * depth, 1, *patch)),
            **{name: (trainer_network(t, plans, "2d", 1, classes), slab) for name, t in SLAB_TRAINERS.items()},
            "3d_fullres": (trainer_network(nnUNetTrainer, plans, "3d_fullres", 1, classes),
                           torch.randn(full["batch_size"], 1, *full["patch_size"]))}


def measure(device="cuda", depth=12, batch=2, size=256, volume_depth=128, warmup=5, rounds=20, amp=True,
            compile=False, classes=3, networks=None, workdir=None) -> dict:
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # nnU-Net's run_training sets it
    plans = planned_plans(size, volume_depth, workdir, spacing=(1.0, 1.0, 1.0))
    specs = {k: v for k, v in networks_and_inputs(plans, depth, batch, classes).items()
             if k == "2d" or networks is None or k in networks}
    nets = {name: net for name, (net, _) in specs.items()}
    runners = {}
    for name, (_, x) in specs.items():
        mode = ("fullgraph" if isinstance(nets[name], SlabUNet) else "default") if compile else None
        runners[name] = TrainingStep(name, nets[name], x, device, amp, mode)
    for r in range(warmup + rounds):
        for runner in runners.values():
            if not runner.error:
                runner.run(warm=r < warmup)
    results = {}
    for name, run in runners.items():
        x, ok = specs[name][1], bool(run.times)
        med = statistics.median(run.times) if ok else float("nan")
        q1, _, q3 = quartiles(run.times) if ok else [float("nan")] * 3
        results[name] = {
            "input": list(x.shape), "voxels": x[:, 0].numel(), "params": sum(p.numel() for p in run.net.parameters()),
            "s_per_step": med, "iqr_s": [q1, q3], "s_per_voxel": med / x[:, 0].numel(),
            "peak_mib": run.static_mib() + max(run.peaks) if ok else float("nan"),
            "warmup_s": run.warmup, "grad_norms": [float(n) for n in run.norms],
            "fullgraph_error": run.fullgraph_error, "problems": run.problems(),
            "network": type(run.net).__name__, "slab": isinstance(run.net, SlabUNet)}
    base = results["2d"]
    for v in results.values():
        v["time_vs_2d"] = v["s_per_voxel"] / base["s_per_voxel"]
        v["memory_vs_2d"] = v["peak_mib"] / base["peak_mib"]
    return results


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else platform.processor() or "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a smoke test")
    p.add_argument("--depth", type=int, default=12, help="slices per slab D (default 12)")
    p.add_argument("--batch", type=int, default=2, help="slabs per batch B; the 2d batch is B*D (default 2)")
    p.add_argument("--size", type=int, default=256, help="slice size the volumes are planned for (default 256)")
    p.add_argument("--volume-depth", type=int, default=128,
                   help="slices of the planned volumes, which sets the 3d_fullres patch (default 128)")
    p.add_argument("--workdir", help="keep the generated volumes and nnU-Net's plans here for the next run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per network first (default 5)")
    p.add_argument("--rounds", type=int, default=20, help="timed steps per network (default 20)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="autocast, float16 on cuda with a GradScaler, bfloat16 on cpu (default on)")
    p.add_argument("--compile", action="store_true", help="torch.compile every network, as nnU-Net does on CUDA")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, help="the networks besides 2d (default: all)")
    p.add_argument("--json", help="write settings and results to this file")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.warmup < 0:
        p.error("--rounds must be >= 1 and --warmup >= 0")
    settings = {k: v for k, v in vars(a).items() if k not in ("json", "workdir")}
    settings.update(classes=3, deep_supervision=True, loss="sum of output means")
    print(f"device {device_name(a.device)}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"python {platform.python_version()}\nsettings {json.dumps(settings)}", flush=True)
    res = measure(a.device, a.depth, a.batch, a.size, a.volume_depth, a.warmup, a.rounds, a.amp, a.compile,
                  networks=a.networks, workdir=a.workdir)
    print(f"\nmedian of {a.rounds} training steps per network after {a.warmup} warm-up steps, interleaved; "
          f"amp {'on' if a.amp else 'off'}, compile {'on' if a.compile else 'off'}\n"
          "| network | input | params | s/step (IQR) | s/voxel | time vs 2d | peak MiB | memory vs 2d | "
          "first step s | warm-up s |\n|---|---|---|---|---|---|---|---|---|---|")
    for k, v in res.items():
        w = v["warmup_s"] or [float("nan")]
        print(f"| {k} | {'x'.join(map(str, v['input']))} | {v['params']:,} | {v['s_per_step']:.4f} "
              f"({v['iqr_s'][0]:.4f}-{v['iqr_s'][1]:.4f}) | {v['s_per_voxel']:.3e} | {v['time_vs_2d']:.3f} | "
              f"{v['peak_mib']:.0f} | {v['memory_vs_2d']:.3f} | {w[0]:.2f} | {sum(w):.2f} |")
    if a.compile:
        for k, v in res.items():
            if v["slab"]:
                error = v["fullgraph_error"]
                print(f"torch.compile(fullgraph=True) {k}: {'FAIL ' + error if error else 'ok'}")
    for k, v in res.items():
        skipped = sum(not math.isfinite(n) for n in v["grad_norms"])
        print(f"FAIL {k}: {'; '.join(v['problems'])}" if v["problems"]
              else f"ok {k}: losses and weights finite; {skipped} of {len(v['grad_norms'])} steps skipped by "
                   f"GradScaler (gradient overflow in float16, as nnU-Net's scaler does)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device_name(a.device), "torch": torch.__version__, "cuda": torch.version.cuda,
                       "settings": settings, "results": res}, f, indent=1)
    return res


if __name__ == "__main__":
    main()
