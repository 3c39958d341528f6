"""The paper's reference U-Net (Table 1): 2D U-Net, Residual DSM and Distill DSM variants.

Encoder 16, 32, 64, 128, 128 with max-pooling; decoder blocks (256->64), (128->32),
(64->16), (32->16) with bilinear upsampling and skip concatenation, the first conv of a
decoder block halving its input channels; 3x3 convs with bias, BatchNorm, ReLU; a final
1x1 conv. One depth shift module per double-conv block, after its first conv+norm+ReLU,
none in the input block (the authors' released code). Its parameter counts equal the
paper's exactly (`python -m benchmarks paper-params` prints them).
"""
import torch
from torch import nn
from torch.nn import functional as F

from nnunet_distilldsm.architectures.depth_shift import DepthShiftModule, fold_depth, make_dsm, unfold_depth


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int, dsm: str = "none", alpha: float = 0.5):
        layers = [nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True)]
        module = make_dsm(dsm, mid, alpha)
        layers += [module] if module is not None else []
        layers += [nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, dsm: str, alpha: float):
        super().__init__()
        self.conv = DoubleConv(cin, cout, cin // 2, dsm, alpha)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv(torch.cat((skip, x), dim=1))


class PaperUNet(nn.Module):
    """(B, C, D, H, W) -> (B, K, D, H, W); dsm is 'distill', 'residual' or 'none' (the 2D U-Net)."""

    def __init__(self, in_channels: int, num_classes: int, dsm: str = "distill", alpha: float = 0.5):
        super().__init__()
        enc = (16, 32, 64, 128, 128)
        self.inc = DoubleConv(in_channels, enc[0], enc[0])
        self.downs = nn.ModuleList(DoubleConv(enc[i], enc[i + 1], enc[i + 1], dsm, alpha) for i in range(4))
        self.ups = nn.ModuleList(Up(cin, cout, dsm, alpha) for cin, cout in ((256, 64), (128, 32), (64, 16), (32, 16)))
        self.outc = nn.Conv2d(enc[0], num_classes, 1)
        self._depth_modules = [m for m in self.modules() if isinstance(m, DepthShiftModule)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = x.shape[2]
        for m in self._depth_modules:
            m.depth = depth
        skips = [self.inc(fold_depth(x))]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return unfold_depth(self.outc(y), depth)


PAPER_PARAMETER_COUNTS = [  # (network, dsm, alpha, inputs, outputs, the paper's count)
    ("2D U-Net", "none", 0.5, 4, 3, 1_082_211), ("Distill DSM, alpha 1/2", "distill", 0.5, 1, 2, 1_216_266),
    ("Distill DSM, alpha 1/4", "distill", 0.25, 2, 2, 1_115_606), ("Distill DSM, alpha 1", "distill", 1.0, 2, 2,
                                                                   1_619_330)]


def paper_parameter_table() -> str:
    """The paper's parameter counts next to those of PaperUNet, as a markdown table."""
    lines = ["| network | in | out | paper | ours | equal |", "|---|---|---|---|---|---|"]
    for name, dsm, alpha, cin, cout, paper in PAPER_PARAMETER_COUNTS:
        ours = sum(p.numel() for p in PaperUNet(cin, cout, dsm, alpha).parameters())
        lines.append(f"| {name} | {cin} | {cout} | {paper:,} | {ours:,} | {'yes' if ours == paper else 'NO'} |")
    return "\n".join(lines)
