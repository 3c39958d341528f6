"""One model's training step cost, measured in a process of its own so peak memory is its own.

    python -m benchmarks.train_step MODEL_FOLDER [--fold 0] [--steps 5]

Builds the network and a batch exactly as the model folder's plans.json say (the trainer's
batch size and patch), runs forward + deep-supervision loss + backward + SGD step, and prints
JSON: median seconds per step; peak_train_mem_mb, the memory the step holds at its peak (the
end of the forward pass: weights, gradients, momentum, batch and what autograd keeps for
backward), counted by glibc's allocator (mallinfo2), so allocator caching does not blur it;
and peak_rss_mb, the process's peak resident memory over its memory after imports.
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
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
    x = torch.randn(cfg.batch_size, n_in, *cfg.patch_size)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = sum(o.float().square().mean() for o in (out if isinstance(out, (list, tuple)) else [out]))
        held.append(allocated_mb() - before_alloc)
        loss.backward()
        opt.step()
        if i:  # step 0 warms up
            times.append(time.perf_counter() - t)
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
