"""nnU-Net compiles the network on CUDA; the modules must compile without graph breaks (checked on CPU).

Built as DistillDSMTrainer plans it: a module after every conv (one per block is a subset of those)."""
import pytest
import torch

from helpers import SMALL
from nnunet_distilldsm.architectures import SlabUNet


@pytest.mark.parametrize("dsm", ["distill", "residual"])
def test_compiles_fullgraph_and_matches_eager(dsm):
    """The modules' autograd Functions (depth_shift.py) trace into the graph, forward and backward."""
    torch.manual_seed(0)
    net = SlabUNet(1, 3, dsm=dsm, deep_supervision=True, placement="conv",
                   **{**SMALL, "features_per_stage": [8, 16, 16]})
    x = torch.randn(2, 1, 5, 16, 16)
    eager = net(x)
    compiled = torch.compile(net, fullgraph=True)  # fullgraph: any graph break is an error
    out = compiled(x)
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    sum(o.sum() for o in eager).backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    sum(o.sum() for o in compiled(x)).backward()
    # float32 sums in another order, relative to the largest gradient (a conv bias before instance norm has a
    # gradient of exactly zero in theory, rounding noise in practice)
    scale = max(float(a.abs().max()) for a in eager_grads)
    for a, p in zip(eager_grads, net.parameters()):
        torch.testing.assert_close(p.grad, a, rtol=1e-3, atol=1e-4 * scale)


def test_runs_under_autocast_bf16():
    """nnU-Net trains under autocast on CUDA; on CPU, bf16 autocast exercises the same dtype paths."""
    torch.manual_seed(0)
    net = SlabUNet(1, 3, deep_supervision=True, placement="conv", **{**SMALL, "features_per_stage": [8, 16, 16]})
    x = torch.randn(2, 1, 5, 16, 16)
    ref = net(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out[0].dtype == torch.bfloat16
    sum(o.float().mean() for o in out).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    torch.testing.assert_close(out[0].float(), ref, rtol=0.1, atol=0.1)
    # module outputs recomputed in backward under the forward's autocast state: the same gradients as kept ones
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.recompute_module_outputs = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sum(o.float().mean() for o in net(x)).backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, net.parameters()))
