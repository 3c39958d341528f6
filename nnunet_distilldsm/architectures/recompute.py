"""Keep depth-module outputs out of the tensors autograd saves for backward.

The layer after a depth module (a convolution) saves the module's output for its weight
gradient: one more copy of a feature map per module than the 2D network keeps. The module's
input is kept anyway (the activation before it saves it), and the module is cheap, so inside
this context a saved module output is replaced by (module, input) and recomputed when the
backward pass needs it. Tensors are matched by identity, never by address.
"""
import contextlib
import weakref
from typing import Iterable

import torch

from nnunet_distilldsm.architectures.depth_shift import DepthShiftModule


class _Recipe:
    """How to rebuild one module output: the module, its input, its depth, and the autocast state."""

    def __init__(self, module: DepthShiftModule, x: torch.Tensor, depth: int, dtype: torch.dtype):
        self.module, self.x, self.depth, self.dtype = module, x, depth, dtype
        kind = x.device.type
        self.autocast = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))

    def __call__(self) -> torch.Tensor:
        kind, enabled, dtype = self.autocast
        with torch.no_grad(), torch.autocast(kind, dtype=dtype, enabled=enabled):
            return self.module.mix(self.x, self.depth).to(self.dtype)


@contextlib.contextmanager
def recompute_outputs(modules: Iterable[DepthShiftModule]):
    """Within this context, forward passes through `modules` keep no module outputs for backward."""
    modules = list(modules)
    produced = {}  # id(output) -> (weakref to output, recipe)

    def on_output(module, x, out):
        produced[id(out)] = (weakref.ref(out), _Recipe(module, x, module.depth, out.dtype))

    def pack(t):
        ref, recipe = produced.get(id(t), (None, None))
        return recipe if ref is not None and ref() is t else t

    def unpack(saved):
        return saved() if isinstance(saved, _Recipe) else saved

    for m in modules:
        m.on_output = on_output
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
    finally:
        for m in modules:
            m.on_output = None
