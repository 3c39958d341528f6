"""Accuracy and cost measures, from maintained counters: Dice, HD95 (MONAI), FLOPs (torch)."""
import math
from typing import Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def dice(pred: np.ndarray, ref: np.ndarray, label: int) -> float:
    """Dice of one label; NaN when the label is in neither (nnU-Net's convention)."""
    p, r = pred == label, ref == label
    denom = p.sum() + r.sum()
    return float(2 * (p & r).sum() / denom) if denom else math.nan


def hd95(pred: np.ndarray, ref: np.ndarray, label: int, spacing: Sequence[float]) -> float:
    """95th percentile symmetric Hausdorff distance in mm (MONAI); NaN when either mask is empty."""
    from monai.metrics import compute_hausdorff_distance
    p, r = pred == label, ref == label
    if not p.any() or not r.any():
        return math.nan
    to_t = lambda m: torch.from_numpy(m[None, None].astype(np.float32))  # noqa: E731
    return float(compute_hausdorff_distance(to_t(p), to_t(r), include_background=True, percentile=95,
                                            spacing=[float(s) for s in spacing])[0, 0])


def flops_per_voxel(network: torch.nn.Module, input_shape: Sequence[int]) -> float:
    """Forward FLOPs of one patch (torch's FlopCounterMode: convs and matmuls) per input voxel."""
    network.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(*input_shape))
    return counter.get_total_flops() / math.prod(input_shape[2:])
