"""Training-step time and peak GPU memory of Distill DSM against nnU-Net 2d and 3d_fullres, on one GPU.

network_speed.py measures on CPU threads in float32; nnU-Net trains on a GPU under float16
autocast (and, by default on CUDA, torch.compile), where the depth modules' small convs,
concatenations and pads and what autograd keeps for backward cost differently. This script
times what nnU-Net's trainer does per iteration: zero_grad, forward and loss under autocast,
scaled backward, unscale, gradient clipping at 12, SGD step (lr 1e-2, momentum 0.99,
nesterov, weight decay 3e-5), with cudnn.benchmark on, as nnU-Net sets it.

It needs no nnU-Net: only torch, dynamic_network_architectures and this package's
architectures, so it runs on a bare GPU machine with the repository on PYTHONPATH. The
networks are built from the plain kwargs nnU-Net 2.8's planner writes (PlainConvUNet at
isotropic spacing) and, for SlabUNet, the kwargs make_slab_plans adds by default
(trainers/slab_plans.py, which imports nnU-Net, mirrored in `slab_arch`):

    2d            PlainConvUNet, a batch of B*D slices (B, 1, H, W)
    Distill DSM   SlabUNet, B slabs of D slices (B, 1, D, H, W): the same voxels as 2d
    Residual DSM  SlabUNet, the same slabs
    3d_fullres    PlainConvUNet with 3D convs, (batch3d, 1, *patch3d)

Networks are interleaved step by step after the warm-up; each reports the median and IQR
of seconds per step, seconds per voxel and its ratio to 2d's, and its peak memory (its
weights, optimizer state and input plus the step's peak allocation over its start, in MiB)
and the ratio to 2d's. With --compile the slab networks are compiled with fullgraph=True
first (a graph break is printed as FAIL, then they fall back to nnU-Net's plain compile).

    python -m nnunet_distilldsm.benchmarks.gpu_speed [--device cuda] [--depth 12] [--batch 2]
        [--patch 256 256] [--patch3d 128 128 128] [--batch3d 2] [--warmup 5] [--rounds 20]
        [--no-amp] [--compile] [--json PATH]
    (or: nnunet-distilldsm gpu-speed ...)
"""
import argparse
import copy
import json
import math
import platform
import pydoc
import statistics
import time

import torch

from nnunet_distilldsm.architectures import SlabUNet  # noqa: F401  (importable for pydoc.locate below)

PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
SLAB_NETWORK = "nnunet_distilldsm.architectures.slab_unet.SlabUNet"
MiB = 2 ** 20
NETWORKS = ("Distill DSM", "Residual DSM", "3d_fullres")  # each measured against "2d"


def planned_arch(patch) -> dict:
    """What nnU-Net 2.8's default planner writes for a 2d or 3d patch at isotropic spacing: each axis pooled
    while its feature map stays >= 4, 32 features doubling up to 512 (2d) or 320 (3d), 3-wide kernels,
    two convs per stage."""
    dim, pools = len(patch), [max(0, math.floor(math.log2(p / 4))) for p in patch]
    for p, n in zip(patch, pools):
        if p % 2 ** n:
            raise SystemExit(f"patch {list(patch)}: {p} is not divisible by 2**{n}; nnU-Net plans patches that are")
    n = max(pools) + 1
    return {"network_class_name": PLAIN_UNET, "arch_kwargs": {
        "n_stages": n, "features_per_stage": [min(32 * 2 ** i, 512 if dim == 2 else 320) for i in range(n)],
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d", "kernel_sizes": [[3] * dim] * n,
        "strides": [[1] * dim] + [[2 if s <= k else 1 for k in pools] for s in range(1, n)],
        "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


def slab_arch(arch_2d: dict, dsm: str) -> dict:
    """SlabUNet's entry as make_slab_plans writes it by default: the 2d kwargs, kernels and strides as (1, y, x),
    the 2d network as base, and the DSM settings: one module per block, as benchmarks/results/gpu measured
    (DistillDSMTrainer has put one after every conv since issue 11; not measured on a GPU yet)."""
    kw = copy.deepcopy(arch_2d["arch_kwargs"])
    kw.update(kernel_sizes=[[1, *k] for k in kw["kernel_sizes"]], strides=[[1, *s] for s in kw["strides"]],
              base_network_class_name=arch_2d["network_class_name"],
              dsm=dsm, alpha=0.5, placement="block", shift_fraction=1 / 8)
    return {"network_class_name": SLAB_NETWORK, "arch_kwargs": kw,
            "_kw_requires_import": list(arch_2d["_kw_requires_import"])}


def build(arch: dict, in_ch: int, classes: int) -> torch.nn.Module:
    """nnU-Net's get_network_from_plans: import the named classes, build with deep supervision, He init."""
    kw = dict(arch["arch_kwargs"])
    for key in arch["_kw_requires_import"]:
        if kw[key] is not None:
            kw[key] = pydoc.locate(kw[key])
    net = pydoc.locate(arch["network_class_name"])(input_channels=in_ch, num_classes=classes,
                                                   deep_supervision=True, **kw)
    net.apply(net.initialize)
    return net


class Runner:
    """One network with its input, optimizer and grad scaler, stepping as nnU-Net's trainer (train_step) does."""

    def __init__(self, name, net, x, device, amp: bool, compile_mode):
        self.name, self.net, self.x, self.device, self.amp = name, net.to(device), x.to(device), device, amp
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.opt = torch.optim.SGD(self.net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
        self.scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
        self.fullgraph = compile_mode == "fullgraph"
        self.model = torch.compile(self.net, fullgraph=self.fullgraph) if compile_mode else self.net
        self.fullgraph_error, self.error = None, None
        self.times, self.peaks, self.losses, self.norms, self.warmup = [], [], [], [], []

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp):
            loss = sum(o.float().mean() for o in self.model(self.x))
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
            self.opt.step()
        return loss.detach(), norm.detach()

    def timed_step(self):
        """(seconds, MiB allocated at the step's peak over its start); gradients are freed after it, so every
        network's step starts without them."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t = time.perf_counter()
        loss, norm = self.step()
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t
        peak = (torch.cuda.max_memory_allocated(self.device) - start) / MiB if cuda else float("nan")
        self.opt.zero_grad(set_to_none=True)
        self.losses.append(loss)
        self.norms.append(norm)
        return seconds, peak

    def run(self, warm: bool):
        """One warm-up or timed step; a failure is recorded and ends this network's run, not the others'."""
        try:
            try:
                seconds, peak = self.timed_step()
            except Exception as e:  # noqa: BLE001  (a graph break under fullgraph=True: report, compile as nnU-Net)
                if not self.fullgraph or self.losses:  # only the first step compiles
                    raise
                self.fullgraph, self.fullgraph_error = False, f"{type(e).__name__}: {str(e).strip()[:600]}"
                print(f"FAIL torch.compile(fullgraph=True) of {self.name}: {self.fullgraph_error}\n"
                      f"     continuing with torch.compile(network) as nnU-Net does", flush=True)
                self.model = torch.compile(self.net)
                seconds, peak = self.timed_step()
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {str(e).strip()[:600]}"
            print(f"FAIL {self.name}: {self.error}\n     no more steps for it", flush=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return
        if not self.losses[:-1]:  # the first step: with --compile, the compile time
            print(f"{self.name}: first step {seconds:.2f} s", flush=True)
        if warm:
            self.warmup.append(seconds)
        else:
            self.times.append(seconds)
            self.peaks.append(peak)

    def static_mib(self) -> float:
        """Weights, optimizer state and input: what the network holds between steps."""
        tensors = list(self.net.parameters()) + [self.x] + [t for s in self.opt.state.values() for t in s.values()
                                                           if torch.is_tensor(t)]
        return sum(t.numel() * t.element_size() for t in tensors) / MiB

    def problems(self):
        """What says the training did not work: an error, non-finite losses, weights or last gradients."""
        if self.error:
            return [self.error]
        out = []
        losses, norms = torch.stack(self.losses).float(), torch.stack(self.norms).float()
        if not torch.isfinite(losses).all():
            out.append(f"non-finite loss in {int((~torch.isfinite(losses)).sum())} of {len(losses)} steps")
        if (~torch.isfinite(norms)).float().mean() > 0.5:  # GradScaler skips an overflowing step and lowers its scale
            out.append(f"non-finite gradients in {int((~torch.isfinite(norms)).sum())} of {len(norms)} steps")
        if not all(torch.isfinite(p).all() for p in self.net.parameters()):
            out.append("non-finite weights after the steps")
        return out


def quartiles(values):
    return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3


def measure(device="cuda", depth=12, batch=2, patch=(256, 256), patch3d=(128, 128, 128), batch3d=2,
            warmup=5, rounds=20, amp=True, compile=False, classes=3, networks=None) -> dict:
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # nnU-Net's run_training sets it
    arch_2d, arch_3d = planned_arch(patch), planned_arch(patch3d)
    torch.manual_seed(0)
    slab = torch.randn(batch, 1, depth, *patch)
    specs = {"2d": (arch_2d, slab.transpose(1, 2).reshape(batch * depth, 1, *patch)),
             "Distill DSM": (slab_arch(arch_2d, "distill"), slab),
             "Residual DSM": (slab_arch(arch_2d, "residual"), slab),
             "3d_fullres": (arch_3d, torch.randn(batch3d, 1, *patch3d))}
    specs = {k: v for k, v in specs.items() if k == "2d" or networks is None or k in networks}
    runners = {}
    for name, (arch, x) in specs.items():
        mode = ("fullgraph" if arch["network_class_name"] == SLAB_NETWORK else "default") if compile else None
        runners[name] = Runner(name, build(arch, 1, classes), x, device, amp, mode)
    for r in range(warmup + rounds):
        for runner in runners.values():
            if not runner.error:
                runner.run(warm=r < warmup)
    results = {}
    for name, run in runners.items():
        (_, x), ok = specs[name], bool(run.times)
        med = statistics.median(run.times) if ok else float("nan")
        q1, _, q3 = quartiles(run.times) if ok else [float("nan")] * 3
        results[name] = {
            "input": list(x.shape), "voxels": x[:, 0].numel(), "params": sum(p.numel() for p in run.net.parameters()),
            "s_per_step": med, "iqr_s": [q1, q3], "s_per_voxel": med / x[:, 0].numel(),
            "peak_mib": run.static_mib() + max(run.peaks) if ok else float("nan"),
            "warmup_s": run.warmup, "grad_norms": [float(n) for n in run.norms], "fullgraph_error": run.fullgraph_error, "problems": run.problems(),
            "arch": specs[name][0]}
    base = results["2d"]
    for v in results.values():
        v["time_vs_2d"] = v["s_per_voxel"] / base["s_per_voxel"]
        v["memory_vs_2d"] = v["peak_mib"] / base["peak_mib"]
    return results


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else platform.processor() or "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(prog="nnunet-distilldsm gpu-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a smoke test")
    p.add_argument("--depth", type=int, default=12, help="slices per slab D (default 12)")
    p.add_argument("--batch", type=int, default=2, help="slabs per batch B; the 2d batch is B*D (default 2)")
    p.add_argument("--patch", type=int, nargs=2, default=[256, 256], help="2d patch H W (default 256 256)")
    p.add_argument("--patch3d", type=int, nargs=3, default=[128, 128, 128], help="3d_fullres patch (default 128^3)")
    p.add_argument("--batch3d", type=int, default=2, help="3d_fullres batch (default 2)")
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
    settings = {k: v for k, v in vars(a).items() if k != "json"}
    settings.update(classes=3, deep_supervision=True, loss="sum of output means")
    print(f"device {device_name(a.device)}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"python {platform.python_version()}\nsettings {json.dumps(settings)}", flush=True)
    res = measure(a.device, a.depth, a.batch, tuple(a.patch), tuple(a.patch3d), a.batch3d, a.warmup, a.rounds,
                  a.amp, a.compile, networks=a.networks)
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
            if v["arch"]["network_class_name"] == SLAB_NETWORK:
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
