"""One training step as nnU-Net's trainer takes it: the step every study times.

`TrainingStep` steps a network as nnUNetTrainer.train_step does: zero_grad; forward and loss (the sum of the
deep-supervision outputs' means) under autocast when amp is on; (scaled) backward; gradients clipped at 12; SGD
(lr 1e-2, momentum 0.99, nesterov, weight decay 3e-5); optionally torch.compile'd. `network-speed` (CPU, float32),
`gpu-speed` (GPU, AMP, compile) and the benchmark's cost probe all time it.

The cost probe runs in a process of its own so that peak memory is the model's own:

    python -m benchmarks.train_step MODEL_FOLDER [--fold 0] [--steps 5]

It builds the network and a batch exactly as the model folder's plans.json say (the trainer's batch size and
patch) and prints JSON: median seconds per step; peak_train_mem_mb, the memory the step holds at its peak (the
end of the forward pass: weights, gradients, momentum, batch and what autograd keeps for backward), counted by
glibc's allocator (mallinfo2), so allocator caching does not blur it; and peak_rss_mb, the process's peak
resident memory over its memory after imports.
"""
import argparse
import ctypes
import functools
import gc
import json
import os
import resource
import statistics
import time

import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from benchmarks.model_folder import network_from_model_folder

MiB = 2 ** 20


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


@functools.lru_cache(maxsize=None)
def _mallinfo2():
    """glibc's mallinfo2, loaded once; None where it is missing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return libc.mallinfo2


def allocated_mb() -> float:
    """Bytes handed out by malloc and not freed (heap + mmap), in MB; NaN where glibc's mallinfo2 is missing."""
    mallinfo2 = _mallinfo2()
    if mallinfo2 is None:
        return float("nan")
    m = mallinfo2()
    return (m.uordblks + m.hblkhd) / 2 ** 20


class TrainingStep:
    """One network with its input, optimizer and grad scaler, stepping as nnU-Net's trainer (train_step) does.

    device: a torch.device; amp: autocast (float16 and a GradScaler on CUDA, bfloat16 on the CPU); compile_mode:
    None, "default" (torch.compile as nnU-Net does) or "fullgraph"; after_forward: called with no arguments once
    the forward pass and loss are computed (the memory a step holds at its peak)."""

    def __init__(self, name, net, x, device=torch.device("cpu"), amp: bool = False, compile_mode=None,
                 after_forward=None):
        device = torch.device(device)
        self.name, self.net, self.x, self.device, self.amp = name, net.to(device), x.to(device), device, amp
        self.after_forward = after_forward
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
            out = self.model(self.x)
            loss = sum(o.float().mean() for o in (out if isinstance(out, (list, tuple)) else [out]))
        if self.after_forward is not None:
            self.after_forward()
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


def measure(model_folder: str, fold: int = 0, steps: int = 5) -> dict:
    # nnU-Net's trainer lookup imports its whole trainer tree (and, for plugin trainers, the
    # plugin's) the first time: do it before the baseline so it is not counted as training memory
    trainer_name = torch.load(os.path.join(model_folder, f"fold_{fold}", "checkpoint_final.pth"), map_location="cpu",
                              weights_only=False)["trainer_name"]
    recursive_find_trainer_class_by_name(trainer_name)
    gc.collect()
    torch.manual_seed(0)
    before, before_alloc, held = rss_mb(), allocated_mb(), []
    net, cfg, n_in = network_from_model_folder(model_folder, fold, deep_supervision=True)
    x = torch.randn(cfg.batch_size, n_in, *cfg.patch_size)
    step = TrainingStep(os.path.basename(model_folder), net, x,
                        after_forward=lambda: held.append(allocated_mb() - before_alloc))
    times = [step.timed_step()[0] for _ in range(steps + 1)][1:]  # step 0 warms up
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"train_s_per_iter": statistics.median(times), "peak_train_mem_mb": max(held), "peak_rss_mb": peak - before,
            "batch": cfg.batch_size, "patch": list(cfg.patch_size)}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("model_folder")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    print(json.dumps(measure(a.model_folder, a.fold, a.steps)))
