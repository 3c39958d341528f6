"""The modules' arithmetic as first written (pad + cat), kept as the reference the fast modules must match.

`depth_shift.py` computes the same outputs with one write per output element; tests compare the two.
"""
import copy
import functools

import torch
from torch.nn import functional as F

from nnunet_distilldsm.architectures.depth_shift import DepthShiftModule, DistillDSM


def shift_along_depth(x: torch.Tensor, depth: int, steps: int) -> torch.Tensor:
    n, c, h, w = x.shape
    v = x.view(n // depth, depth, c, h, w)
    if steps > 0:
        v = F.pad(v[:, :depth - steps], (0, 0, 0, 0, 0, 0, steps, 0))
    else:
        v = F.pad(v[:, -steps:], (0, 0, 0, 0, 0, 0, 0, -steps))
    return v.reshape(n, c, h, w)


def distill_mix(module, x: torch.Tensor, depth: int) -> torch.Tensor:
    """DistillDSM.mix with `module`'s parameters."""
    untouched, part = x.split((module.kept, module.distilled), dim=1)
    q = module.quarter
    r, f, b = module.distill(part).split((2 * q, q, q), dim=1)
    return torch.cat((untouched, r, shift_along_depth(f, depth, 1), shift_along_depth(b, depth, -1)), dim=1)


def residual_mix(module, x: torch.Tensor, depth: int) -> torch.Tensor:
    """ResidualDSM.mix."""
    n = module.n_shift
    fwd, bwd, rest = x.split((n, n, module.channels - 2 * n), dim=1)
    shifted = torch.cat((shift_along_depth(fwd, depth, 1), shift_along_depth(bwd, depth, -1), rest), 1)
    return x + shifted


def with_reference_modules(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of `net` whose modules run the reference arithmetic with the same parameters."""
    net = copy.deepcopy(net)
    for m in net.modules():
        if isinstance(m, DepthShiftModule):
            m.mix = functools.partial(distill_mix if isinstance(m, DistillDSM) else residual_mix, m)
    return net
