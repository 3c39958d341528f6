"""Which input slices an output slice depends on, read off gradients."""
import torch


def slices_reached(net, x: torch.Tensor, out_slice: int, volume: int = 0):
    """{(input volume, input slice)} whose gradient on output[volume, :, out_slice] is non-zero."""
    x = x.clone().requires_grad_(True)
    out = net(x)
    out = out[0] if isinstance(out, (list, tuple)) else out
    out[volume, :, out_slice].sum().backward()
    g = x.grad.abs().sum(dim=(1, 3, 4))  # (B, D)
    return {(b, d) for b in range(g.shape[0]) for d in range(g.shape[1]) if g[b, d] > 0}
