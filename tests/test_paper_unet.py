"""The paper's reference U-Net: exact parameter counts, shapes, and per-volume independence."""
import pytest
import torch

from benchmarks.dependence import slices_reached
from benchmarks.paper_unet import PaperUNet
from benchmarks.paper_unet import paper_parameter_table as paper_params


@pytest.mark.parametrize("cin,cout,dsm,alpha,paper", [
    (4, 3, "none", 0.5, 1_082_211), (1, 2, "distill", 0.5, 1_216_266),
    (2, 2, "distill", 0.25, 1_115_606), (2, 2, "distill", 1.0, 1_619_330),
    (4, 3, "residual", 0.5, 1_082_211)])  # Table 1: Residual DSM has the 2D U-Net's parameters
def test_parameter_counts_equal_the_papers(cin, cout, dsm, alpha, paper):
    assert sum(p.numel() for p in PaperUNet(cin, cout, dsm, alpha).parameters()) == paper


def test_table_command_says_all_equal():
    table = paper_params()
    assert table.count("| yes |") == 4 and "NO" not in table


def test_shape_and_reach():
    torch.manual_seed(0)
    net = PaperUNet(1, 2).double().eval()  # eval: BatchNorm statistics would mix the batch in training
    x = torch.randn(2, 1, 21, 20, 20, dtype=torch.double)
    assert net(x).shape == (2, 2, 21, 20, 20)
    assert slices_reached(net, x, 10) == {(0, i) for i in range(2, 19)}  # 8 modules on the path
