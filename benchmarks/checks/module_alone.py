"""One module alone, forward + backward, fastest of 20: the plugin's pad + cat modules against the one-write
modules they replaced (benchmarks/one_write_depth_shift.py), beside the C -> C conv of the layer the module follows
and the module's own conv alone, on 8 slices.

    python -m benchmarks.checks.module_alone
"""
import time

import torch

from benchmarks import one_write_depth_shift as one_write
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, ResidualDSM


def fastest_ms(fn, n=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def forward_backward(f, g):
    def run():
        y = f()
        y.backward(g[:, :y.shape[1]])
    return run


torch.manual_seed(0)
depth = 8
print("| C x H x W | layer's conv C->C | Distill DSM, one write | pad + cat | its conv alone | "
      "Residual DSM, one write | pad + cat |\n|---|---|---|---|---|---|---|")
for c, h in ((32, 128), (64, 64), (32, 256)):
    m, r, conv = DistillDSM(c, 0.5), ResidualDSM(c), torch.nn.Conv2d(c, c, 3, padding=1)
    x = torch.randn(depth, c, h, h, requires_grad=True)
    g = torch.randn(depth, c, h, h)
    cells = [fastest_ms(forward_backward(lambda: conv(x), g)),
             fastest_ms(forward_backward(lambda: one_write.distill_mix(m, x, depth), g)),
             fastest_ms(forward_backward(lambda: m.mix(x, depth), g)),
             fastest_ms(forward_backward(lambda: m.distill(x[:, c // 2:]), g)),
             fastest_ms(forward_backward(lambda: one_write.residual_mix(r, x, depth), g)),
             fastest_ms(forward_backward(lambda: r.mix(x, depth), g))]
    print(f"| {c} x {h} x {h} | " + " | ".join(f"{v:.1f} ms" for v in cells) + " |")
