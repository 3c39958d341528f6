"""Depth shift modules: let a 2D network exchange features between neighbouring slices.

Both modules take the slices of a slab folded into the batch, shape (B*D, C, H, W), and
view them as (B, D, C, H, W) to move features along D. Volumes never exchange anything:
the shift is per volume and zero-filled at both ends of every stack (no wrap-around).

The slab depth D is not in the tensor's shape: each module holds it in its `depth`
attribute. The networks that fold depth into the batch (`SlabUNet`, the laboratory's `PaperUNet`) set it on
their modules themselves at every forward pass, from the input's depth; `set_slab_depth`
does the same for a network built by hand from the modules (as the tests do).

The rules for the settings live here once (`check_alpha`, `check_shift_fraction`): the
modules and the slab plans (`trainers/slab_plans.py`, at trainer start) both call them.
"""
from typing import Type

import torch
from torch import nn
from torch.nn import functional as F


def check_alpha(alpha: float, channels: int) -> int:
    """The number of channels Distill DSM distills from `channels` with `alpha`; ValueError if none fits.

    alpha must be in (0, 1], and alpha*channels a whole multiple of 4 (R takes 1/2, F and B 1/4 each).
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"Distill DSM: alpha must be in (0, 1] (the fraction of a slice's channels the module "
                         f"distills), got {alpha}. Use alpha 0.25, 0.5 or 1")
    distilled = alpha * channels
    if distilled != int(distilled) or int(distilled) % 4:
        raise ValueError(
            f"Distill DSM: alpha={alpha} of {channels} channels is {distilled:g} channels, not a multiple of 4, so "
            f"they cannot be split into R (1/2), F (1/4) and B (1/4). Choose alpha so that alpha*channels is a "
            f"multiple of 4 for every stage (e.g. alpha 0.25, 0.5 or 1 with nnU-Net's channel counts, multiples "
            f"of 32)")
    return int(distilled)


def check_shift_fraction(shift_fraction: float, channels: int) -> int:
    """The number of channels Residual DSM shifts each way out of `channels`; ValueError unless the fraction is
    in (0, 0.5] and shifts at least one channel."""
    if not 0 < shift_fraction <= 0.5:
        raise ValueError(f"Residual DSM: shift_fraction must be in (0, 0.5] (that many channels move one slice "
                         f"forward and as many one slice backward), got {shift_fraction}. The paper's (TSM's) is 1/8")
    n = int(channels * shift_fraction)
    if n < 1:
        raise ValueError(f"Residual DSM: shift_fraction={shift_fraction} of {channels} channels shifts {n} "
                         f"channels each way; choose a fraction in (0, 0.5] with at least one channel")
    return n


def shift(x: torch.Tensor, depth: int, steps: int) -> torch.Tensor:
    """Move features `steps` slices along each stack of `depth` slices, zeros entering at the stack's end.

    x is (B*D, c, H, W); steps=+1 sends slice i's features to slice i+1, steps=-1 to slice i-1. Each stack is
    shifted alone: nothing crosses from one volume to the next.
    """
    n, c, h, w = x.shape
    v = x.view(n // depth, depth, c, h, w)
    k = min(abs(steps), depth)
    v = F.pad(v[:, :depth - k], (0, 0, 0, 0, 0, 0, k, 0)) if steps > 0 else F.pad(v[:, k:], (0, 0, 0, 0, 0, 0, 0, k))
    return v.reshape(n, c, h, w)


class DepthShiftModule(nn.Module):
    """Base of the modules: holds the slab depth of the current forward pass.

    Subclasses implement `mix(x, depth)`, a pure function of the input and the parameters, so
    that `recompute.py` can recompute an output in backward instead of keeping it.
    """

    def __init__(self):
        super().__init__()
        self.depth = 1
        self.on_output = None  # set while a recompute_outputs context is active

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        out = self.mix(x, self.depth)
        if self.on_output is not None:
            self.on_output(self, x, out)
        return out

    def mix(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x: torch.Tensor):
        if x.shape[0] % self.depth:
            raise ValueError(f"{type(self).__name__}: batch of {x.shape[0]} slices is not a whole number of "
                             f"slabs of depth {self.depth}; fold (B, C, D, H, W) into (B*D, C, H, W) and call "
                             f"set_slab_depth(network, D) first")


class DistillDSM(DepthShiftModule):
    """Distill DSM (paper section 3.3).

    Of the last alpha*C channels of every slice, one 3x3 convolution distills R (alpha*C/2,
    kept), F (alpha*C/4, sent to the next slice) and B (alpha*C/4, sent to the previous
    slice). Output channels: [untouched (1-alpha)*C | R_i | F_(i-1) | B_(i+1)].

    One convolution with alpha*C outputs has exactly the parameters of the paper's three
    (its output channels are independent), and runs as one kernel instead of three.
    """

    def __init__(self, channels: int, alpha: float = 0.5, conv_op: Type[nn.Module] = nn.Conv2d,
                 kernel_size: int = 3):
        super().__init__()
        self.channels = channels
        self.distilled = check_alpha(alpha, channels)
        self.kept = channels - self.distilled
        self.quarter = self.distilled // 4
        self.distill = conv_op(self.distilled, self.distilled, kernel_size, padding=kernel_size // 2, bias=True)

    def mix(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        untouched, part = x.split((self.kept, self.distilled), dim=1)
        r, f, b = self.distill(part).split((2 * self.quarter, self.quarter, self.quarter), dim=1)
        return torch.cat((untouched, r, shift(f, depth, 1), shift(b, depth, -1)), dim=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, distilled={self.distilled}"


class ResidualDSM(DepthShiftModule):
    """Residual DSM, the paper's baseline (TSM's residual shift, Lin et al. 2019): no parameters.

    `shift_fraction` of the channels move one slice forward and as many one slice backward;
    the shifted features are added to the unshifted input (identity path).
    """

    def __init__(self, channels: int, shift_fraction: float = 1 / 8):
        super().__init__()
        self.channels, self.n_shift = channels, check_shift_fraction(shift_fraction, channels)

    def mix(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        n = self.n_shift
        fwd, bwd, rest = x.split((n, n, self.channels - 2 * n), dim=1)
        return x + torch.cat((shift(fwd, depth, 1), shift(bwd, depth, -1), rest), dim=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, shifted_each_way={self.n_shift}"


DSM_KINDS = ("distill", "residual", "none")


def make_dsm(kind: str, channels: int, alpha: float = 0.5, shift_fraction: float = 1 / 8,
             conv_op: Type[nn.Module] = nn.Conv2d):
    """The module of `kind` for a feature map of `channels`, or None for 'none'."""
    if kind == "distill":
        return DistillDSM(channels, alpha, conv_op)
    if kind == "residual":
        return ResidualDSM(channels, shift_fraction)
    if kind == "none":
        return None
    raise ValueError(f"dsm must be one of {DSM_KINDS}, got {kind!r}")


def set_slab_depth(network: nn.Module, depth: int) -> None:
    """Tell every depth shift module in `network` how many slices each slab in the batch has."""
    for m in network.modules():
        if isinstance(m, DepthShiftModule):
            m.depth = depth


def fold_depth(x: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) -> (B*D, C, H, W): slices of a slab become consecutive batch entries."""
    b, c, d, h, w = x.shape
    return x.transpose(1, 2).reshape(b * d, c, h, w)


def unfold_depth(y: torch.Tensor, depth: int) -> torch.Tensor:
    """(B*D, K, h, w) -> (B, K, D, h, w)."""
    n, k, h, w = y.shape
    return y.view(n // depth, depth, k, h, w).transpose(1, 2)
