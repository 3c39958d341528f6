"""Accuracy and cost measures, from maintained counters: Dice, HD95 (MONAI), FLOPs (torch)."""
import math
from typing import Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCHMARK_EXTRA = ("monai", "matplotlib")  # setup.cfg's [benchmark] extra, imported only when measuring


class MissingBenchmarkDependency(ImportError):
    pass


def _missing_message(names: Sequence[str]) -> str:
    return (f"nnunet-distilldsm's benchmark needs {' and '.join(names)}, which a plain install does not bring "
            f"(MONAI computes HD95, matplotlib draws the plot). Install the [benchmark] extra: "
            f"pip install 'nnunet-distilldsm[benchmark]' (from a source checkout: pip install -e '.[benchmark]')")


def require_benchmark_dependencies() -> None:
    """Raise MissingBenchmarkDependency naming what to install unless the [benchmark] extra is there.

    Cheap (no import): meant for the start of a benchmark run, before hours of training."""
    import importlib.util
    missing = [m for m in BENCHMARK_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingBenchmarkDependency(_missing_message(missing))


def import_benchmark_dependency(name: str):
    """Import one module of the [benchmark] extra (e.g. "monai.metrics"), or say what to install."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] != name.split(".")[0]:
            raise  # the module is there but something it imports is broken: show that error as it is
        raise MissingBenchmarkDependency(_missing_message([name.split(".")[0]])) from e


def dice(pred: np.ndarray, ref: np.ndarray, label: int) -> float:
    """Dice of one label; NaN when the label is in neither (nnU-Net's convention)."""
    p, r = pred == label, ref == label
    denom = p.sum() + r.sum()
    return float(2 * (p & r).sum() / denom) if denom else math.nan


def hd95(pred: np.ndarray, ref: np.ndarray, label: int, spacing: Sequence[float]) -> float:
    """95th percentile symmetric Hausdorff distance in mm (MONAI); NaN when either mask is empty."""
    compute_hausdorff_distance = import_benchmark_dependency("monai.metrics").compute_hausdorff_distance
    p, r = pred == label, ref == label
    if not p.any() or not r.any():
        return math.nan
    to_t = lambda m: torch.from_numpy(m[None, None].astype(np.float32))  # noqa: E731
    return float(compute_hausdorff_distance(to_t(p), to_t(r), include_background=True, percentile=95,
                                            spacing=[float(s) for s in spacing])[0, 0])


def forward_flops(network: torch.nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of `network` on `x` (torch's FlopCounterMode: convs and matmuls), in its current mode."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(x)
    return counter.get_total_flops()


def flops_per_voxel(network: torch.nn.Module, input_shape: Sequence[int]) -> float:
    """Forward FLOPs of one patch in inference (eval mode) per input voxel."""
    network.eval()
    return forward_flops(network, torch.zeros(*input_shape)) / math.prod(input_shape[2:])
