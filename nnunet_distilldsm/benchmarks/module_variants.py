"""Distill DSM module alternatives, forward+backward side by side (fastest of 9 interleaved rounds, ms).

    python -m nnunet_distilldsm.benchmarks.module_variants

Kept to justify the module's form: one conv for R, F, B, then one torch.cat.
"""
import torch, time
from torch import nn
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, set_slab_depth, shift_along_depth
class ThreeConvs(DistillDSM):
    def __init__(self, c, alpha=0.5):
        super().__init__(c, alpha)
        k, q = self.distilled, self.quarter
        self.r, self.f, self.b = nn.Conv2d(k, 2*q, 3, padding=1), nn.Conv2d(k, q, 3, padding=1), nn.Conv2d(k, q, 3, padding=1)
    def forward(self, x):
        u, p = x.split((self.kept, self.distilled), 1)
        return torch.cat((u, self.r(p), shift_along_depth(self.f(p), self.depth, 1), shift_along_depth(self.b(p), self.depth, -1)), 1)
class Prealloc(DistillDSM):
    def forward(self, x):
        n, c, h, w = x.shape; d = self.depth; q = self.quarter; k = self.kept
        rfb = self.distill(x[:, k:])
        out = torch.empty_like(x)
        out[:, :k] = x[:, :k]
        out[:, k:k + 2 * q] = rfb[:, :2 * q]
        o5 = out.view(n // d, d, c, h, w); r5 = rfb.view(n // d, d, 4 * q, h, w)
        o5[:, 1:, k + 2*q:k + 3*q] = r5[:, :-1, 2*q:3*q]; o5[:, :1, k + 2*q:k + 3*q] = 0
        o5[:, :-1, k + 3*q:] = r5[:, 1:, 3*q:]; o5[:, -1:, k + 3*q:] = 0
        return out

if __name__ == "__main__":
    torch.manual_seed(0)
    for C, HW in ((32, 128), (64, 64), (128, 32), (256, 16)):
        mods = {'one conv + cat (ours)': DistillDSM(C), 'three convs + cat': ThreeConvs(C), 'one conv + prealloc': Prealloc(C)}
        for m in mods.values(): set_slab_depth(m, 8)
        x = torch.randn(16, C, HW, HW, requires_grad=True)
        xcl = x.detach().to(memory_format=torch.channels_last).requires_grad_(True)
        t = {k: [] for k in list(mods) + ['one conv + cat, channels_last']}
        for r in range(9):
            for name, m in mods.items():
                s = time.perf_counter(); m(x).square().mean().backward(); t[name].append(time.perf_counter() - s)
            m = mods['one conv + cat (ours)']
            s = time.perf_counter(); m(xcl).square().mean().backward(); t['one conv + cat, channels_last'].append(time.perf_counter() - s)
        print(f"C={C} {HW}x{HW}, 2 slabs x 8:", {k: round(min(v) * 1e3, 1) for k, v in t.items()})
