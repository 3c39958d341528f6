"""The modules alone: which slices they connect, the zeros at stack ends, and bad settings."""
import pytest
import torch
from torch import nn

from benchmarks.dependence import slices_reached
from nnunet_distilldsm.architectures.depth_shift import (
    DistillDSM,
    ResidualDSM,
    check_alpha,
    check_shift_fraction,
    fold_depth,
    set_slab_depth,
    unfold_depth,
)


class Stack(nn.Module):
    """n modules in a row on (B, C, D, H, W)."""

    def __init__(self, modules):
        super().__init__()
        self.body = nn.Sequential(*modules)

    def forward(self, x):
        set_slab_depth(self, x.shape[2])
        return unfold_depth(self.body(fold_depth(x)), x.shape[2])


@pytest.mark.parametrize("make", [lambda: DistillDSM(16, 0.5), lambda: ResidualDSM(16, 1 / 8)])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_n_modules_reach_exactly_n_slices(make, n):
    torch.manual_seed(0)
    net = Stack([make() for _ in range(n)]).double()
    depth = 2 * n + 5
    x = torch.randn(2, 16, depth, 6, 6, dtype=torch.double)
    for j in (0, depth // 2, depth - 1):
        expected = {(0, i) for i in range(depth) if abs(i - j) <= n}
        assert slices_reached(net, x, j) == expected  # never wraps around, never reaches the other volume


def test_distill_output_layout_and_zero_ends():
    torch.manual_seed(0)
    m = DistillDSM(16, 0.5)
    x = torch.randn(2, 16, 4, 5, 5)
    set_slab_depth(m, 4)
    y = unfold_depth(m(fold_depth(x)), 4)  # (B, C, D, H, W)
    assert y.shape == x.shape
    assert torch.equal(y[:, :8], x[:, :8])  # untouched (1 - alpha) * C channels
    rfb = unfold_depth(m.distill(fold_depth(x[:, 8:])), 4)
    r, f, b = rfb[:, :4], rfb[:, 4:6], rfb[:, 6:8]
    torch.testing.assert_close(y[:, 8:12], r)
    torch.testing.assert_close(y[:, 12:14, 1:], f[:, :, :-1])  # F_(i-1)
    torch.testing.assert_close(y[:, 14:16, :-1], b[:, :, 1:])  # B_(i+1)
    assert torch.all(y[:, 12:14, 0] == 0) and torch.all(y[:, 14:16, -1] == 0)


def test_distill_parameters_match_three_convolutions():
    c, alpha = 64, 0.5
    k = int(alpha * c)
    three = sum(p.numel() for out in (k // 2, k // 4, k // 4) for p in nn.Conv2d(k, out, 3).parameters())
    assert sum(p.numel() for p in DistillDSM(c, alpha).parameters()) == three


def test_single_slice_gets_zeros_from_both_sides():
    m = DistillDSM(8, 1.0)
    set_slab_depth(m, 1)
    y = m(torch.randn(3, 8, 4, 4))
    assert torch.all(y[:, 4:] == 0)


@pytest.mark.parametrize("channels,alpha", [(16, 0.0), (16, 1.5), (16, -0.5), (20, 0.5), (6, 0.5)])
def test_bad_alpha_or_channels_get_a_clear_error(channels, alpha):
    with pytest.raises(ValueError, match="alpha") as e:
        DistillDSM(channels, alpha)
    with pytest.raises(ValueError) as rule:
        check_alpha(alpha, channels)
    assert str(rule.value) == str(e.value)  # the module states the one rule, check_alpha's


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5, float("nan")])
def test_alpha_outside_0_1_is_refused_whatever_the_channels(alpha):
    for channels in (8, 16, 64):
        with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\]"):
            check_alpha(alpha, channels)


@pytest.mark.parametrize("alpha,channels,distilled", [(1.0, 8, 8), (0.5, 16, 8), (0.25, 32, 8), (0.5, 64, 32)])
def test_good_alpha_distills_that_many_channels(alpha, channels, distilled):
    assert check_alpha(alpha, channels) == distilled == DistillDSM(channels, alpha).distilled


def test_bad_shift_fraction():
    with pytest.raises(ValueError, match="shift_fraction"):
        ResidualDSM(4, 1 / 8)


@pytest.mark.parametrize("fraction", [0.0, -0.125, 0.5000001, 0.75, 1.0])
def test_shift_fraction_outside_0_half_is_refused(fraction):
    with pytest.raises(ValueError, match=r"shift_fraction must be in \(0, 0.5\]") as e:
        ResidualDSM(64, fraction)
    with pytest.raises(ValueError) as rule:
        check_shift_fraction(fraction, 64)
    assert str(rule.value) == str(e.value)


@pytest.mark.parametrize("fraction,shifted", [(0.5, 8), (1 / 8, 2), (1 / 16, 1)])
def test_shift_fraction_in_range_shifts_that_many_channels_each_way(fraction, shifted):
    assert check_shift_fraction(fraction, 16) == shifted == ResidualDSM(16, fraction).n_shift


def test_batch_not_a_whole_number_of_slabs():
    m = DistillDSM(8)
    set_slab_depth(m, 3)
    with pytest.raises(ValueError, match="set_slab_depth"):
        m(torch.randn(4, 8, 4, 4))
