"""The plugin's pad + cat modules (depth_shift.py) compute what the one-write modules they replaced computed
(benchmarks/one_write_depth_shift.py): outputs and gradients, alone and inside the slab network, at both placements,
so every accuracy table trained with either stays valid."""
import pytest
import torch

from benchmarks import one_write_depth_shift as reference
from benchmarks.one_write_depth_shift import with_one_write_modules
from helpers import SMALL
from nnunet_distilldsm.architectures import SlabUNet
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, ResidualDSM

DEPTHS = (1, 2, 3, 8)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("make", [lambda: DistillDSM(16, 0.5), lambda: DistillDSM(32, 0.25), lambda: DistillDSM(8, 1.0),
                                  lambda: ResidualDSM(16, 1 / 8), lambda: ResidualDSM(16, 0.5)])
def test_module_matches_the_one_write_module_exactly(make, depth):
    torch.manual_seed(0)
    m = make().double()
    x = torch.randn(3 * depth, m.channels, 5, 7, dtype=torch.double, requires_grad=True)
    g = torch.randn_like(x)
    fast, ref = m.mix(x, depth), reference.distill_mix(m, x, depth) if isinstance(m, DistillDSM) else \
        reference.residual_mix(m, x, depth)
    assert torch.equal(fast, ref)  # the same additions and the same conv: bitwise
    params = [x, *m.parameters()]
    for a, b in zip(torch.autograd.grad(fast, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("depth", (1, 3, 8))
@pytest.mark.parametrize("dsm,placement", [("distill", "conv"), ("distill", "block"), ("residual", "conv"),
                                           ("residual", "block")])
def test_slab_network_matches_the_one_write_network(dsm, placement, depth):
    """Training mode, deep supervision, module outputs recomputed in backward, float32 as nnU-Net trains."""
    torch.manual_seed(0)
    net = SlabUNet(1, 3, dsm=dsm, placement=placement, deep_supervision=True, **SMALL)
    net.apply(net.initialize)
    ref = with_one_write_modules(net)
    x = torch.randn(2, 1, depth, 32, 32)
    outs = []
    for model in (net, ref):
        out = model(x)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward()
        outs.append((out, [p.grad for p in model.parameters()]))
    (out_fast, grad_fast), (out_ref, grad_ref) = outs
    for a, b in zip(out_fast, out_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grad_fast, grad_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_mixed_precision_output_takes_the_wider_type():
    """Under autocast the distilling conv returns half precision beside float32 channels: like torch.cat, the
    output is float32, and the gradient reaching the conv is the conv's own type."""
    m = DistillDSM(16, 0.5)
    x = torch.randn(4, 16, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ref = m.mix(x, 2), reference.distill_mix(m, x, 2)
    assert out.dtype == ref.dtype == torch.float32 and torch.equal(out, ref)
    g = torch.randn_like(out)
    params = [x, *m.parameters()]
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
