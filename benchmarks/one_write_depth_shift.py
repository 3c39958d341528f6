"""The modules' one-write arithmetic (autograd Functions that write each output element once, backward the inverse
shift), as the plugin had it until the plain pad + cat modules of depth_shift.py replaced it: kept as the "before"
that `benchmarks.checks.module_copies` and `module_alone` time the plugin's modules against, and that
tests/test_one_write_modules.py holds them equal to (outputs bitwise, gradients to float tolerance).
"""
import copy
import functools

import torch

from nnunet_distilldsm.architectures.depth_shift import DepthShiftModule, DistillDSM


def copy_shifted(dst: torch.Tensor, src: torch.Tensor, depth: int, steps: int) -> None:
    """dst[slice i] = src[slice i - steps] within each stack of `depth` slices, zeros where i - steps is outside.

    dst and src are (B*D, c, H, W), typically channel ranges of larger tensors: one strided copy, no
    intermediate tensor. steps=+1 sends each slice's features to the next slice.
    """
    dst, src = dst.unflatten(0, (-1, depth)), src.unflatten(0, (-1, depth))
    k = min(abs(steps), depth)
    if steps > 0:
        dst[:, k:].copy_(src[:, :depth - k])
        dst[:, :k].zero_()
    else:
        dst[:, :depth - k].copy_(src[:, k:])
        dst[:, depth - k:].zero_()


def add_shifted(dst: torch.Tensor, src: torch.Tensor, depth: int, steps: int) -> None:
    """dst = src + src shifted by `steps` slices (zeros entering at the stack ends), as one pass."""
    dst, src = dst.unflatten(0, (-1, depth)), src.unflatten(0, (-1, depth))
    k = min(abs(steps), depth)
    if steps > 0:
        torch.add(src[:, k:], src[:, :depth - k], out=dst[:, k:])
        dst[:, :k].copy_(src[:, :k])
    else:
        torch.add(src[:, :depth - k], src[:, k:], out=dst[:, :depth - k])
        dst[:, depth - k:].copy_(src[:, depth - k:])


class _DistillAssemble(torch.autograd.Function):
    """[untouched | R | F shifted +1 | B shifted -1] written once into one new tensor.

    The plain version (pad F and B, then cat) passes over the distilled channels twice and its
    backward slices and pads again; here backward is the inverse shift, also written once.
    """

    @staticmethod
    def forward(ctx, untouched: torch.Tensor, rfb: torch.Tensor, depth: int) -> torch.Tensor:
        n, kept, h, w = untouched.shape
        q = rfb.shape[1] // 4
        out = untouched.new_empty((n, kept + 4 * q, h, w), dtype=torch.promote_types(untouched.dtype, rfb.dtype))
        out[:, :kept].copy_(untouched)
        out[:, kept:kept + 2 * q].copy_(rfb[:, :2 * q])
        copy_shifted(out[:, kept + 2 * q:kept + 3 * q], rfb[:, 2 * q:3 * q], depth, 1)
        copy_shifted(out[:, kept + 3 * q:], rfb[:, 3 * q:], depth, -1)
        ctx.depth, ctx.kept, ctx.rfb_dtype = depth, kept, rfb.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        depth, kept = ctx.depth, ctx.kept
        n, c, h, w = grad.shape
        q = (c - kept) // 4
        grad_rfb = grad.new_empty((n, 4 * q, h, w), dtype=ctx.rfb_dtype)
        grad_rfb[:, :2 * q].copy_(grad[:, kept:kept + 2 * q])
        copy_shifted(grad_rfb[:, 2 * q:3 * q], grad[:, kept + 2 * q:kept + 3 * q], depth, -1)
        copy_shifted(grad_rfb[:, 3 * q:], grad[:, kept + 3 * q:], depth, 1)
        return grad[:, :kept], grad_rfb, None


class _ResidualShift(torch.autograd.Function):
    """x + [first n channels shifted +1 | next n shifted -1 | the rest unshifted], written once.

    Backward is the same sum with the shifts reversed (the map is linear), so nothing is saved.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, depth: int, n: int) -> torch.Tensor:
        ctx.depth, ctx.n = depth, n
        return _ResidualShift.apply_shifts(x, depth, n, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _ResidualShift.apply_shifts(grad, ctx.depth, ctx.n, -1), None, None

    @staticmethod
    def apply_shifts(x: torch.Tensor, depth: int, n: int, direction: int) -> torch.Tensor:
        if torch.compiler.is_compiling():  # out= into views does not trace; the compiler fuses this into one pass
            v = x.unflatten(0, (-1, depth))
            zero = torch.zeros_like(v[:, :1, :n])
            fwd, bwd = v[:, :, :n], v[:, :, n:2 * n]
            ahead, behind = (fwd, bwd) if direction > 0 else (bwd, fwd)
            ahead = ahead + torch.cat((zero, ahead[:, :-1]), 1)
            behind = behind + torch.cat((behind[:, 1:], zero), 1)
            shifted = (ahead, behind) if direction > 0 else (behind, ahead)
            return torch.cat((*shifted, v[:, :, 2 * n:] + v[:, :, 2 * n:]), 2).flatten(0, 1)
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        add_shifted(out[:, :n], x[:, :n], depth, direction)
        add_shifted(out[:, n:2 * n], x[:, n:2 * n], depth, -direction)
        torch.add(x[:, 2 * n:], x[:, 2 * n:], out=out[:, 2 * n:])
        return out


def distill_mix(module: DistillDSM, x: torch.Tensor, depth: int) -> torch.Tensor:
    """DistillDSM.mix with `module`'s parameters, one write."""
    untouched, part = x.split((module.kept, module.distilled), dim=1)
    return _DistillAssemble.apply(untouched, module.distill(part), depth)


def residual_mix(module, x: torch.Tensor, depth: int) -> torch.Tensor:
    """ResidualDSM.mix, one write."""
    return _ResidualShift.apply(x, depth, module.n_shift)


def with_one_write_modules(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of `net` whose modules run the one-write arithmetic with the same parameters."""
    net = copy.deepcopy(net)
    for m in net.modules():
        if isinstance(m, DepthShiftModule):
            m.mix = functools.partial(distill_mix if isinstance(m, DistillDSM) else residual_mix, m)
    return net
