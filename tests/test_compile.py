"""nnU-Net compiles the network on CUDA; the modules must compile without graph breaks (checked on CPU)."""
import torch

from nnunet_distilldsm.architectures import SlabUNet
from test_slab_unet import SMALL


def test_compiles_fullgraph_and_matches_eager():
    torch.manual_seed(0)
    net = SlabUNet(1, 3, deep_supervision=True, **{**SMALL, "features_per_stage": [8, 16, 16]})
    x = torch.randn(2, 1, 5, 16, 16)
    eager = net(x)
    compiled = torch.compile(net, fullgraph=True)  # fullgraph: any graph break is an error
    out = compiled(x)
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    sum(o.sum() for o in compiled(torch.randn(2, 1, 5, 16, 16))).backward()
    assert all(p.grad is not None for p in net.parameters())
