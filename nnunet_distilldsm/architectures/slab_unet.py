"""SlabUNet: nnU-Net's planned 2D U-Net run over slabs of consecutive slices, with depth shift modules.

Built from plain kwargs that a plans file holds (see `DistillDSMTrainer`): the planned 2D
network's own `arch_kwargs` plus `base_network_class_name`, `dsm`, `alpha`, `placement`,
`shift_fraction` and `input_neighbours`. Kernel sizes and strides may be written 3-D with a
leading 1 ((1, s, s): depth is never pooled), which is what nnU-Net's deep-supervision scales need.
"""
import pydoc
from typing import List, Tuple, Union

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU, StackedConvBlocks
from torch import nn
from torch.nn import functional as F

from nnunet_distilldsm.architectures.depth_shift import DSM_KINDS, DepthShiftModule, fold_depth, make_dsm, unfold_depth
from nnunet_distilldsm.architectures.recompute import recompute_outputs

PLACEMENTS = ("block", "conv")
DEFAULT_BASE = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
SUPPORTED_BASES = (PlainConvUNet, ResidualEncoderUNet)  # what nnU-Net's default and ResEnc planners plan


def check_base(base_cls, name: str) -> None:
    """ValueError unless `base_cls` is one of SUPPORTED_BASES (or a subclass keeping its forward): SlabUNet takes
    the base's `encoder` and `decoder`, runs them as decoder(encoder(x)) and appends modules to their conv units."""
    supported = [f"{c.__module__}.{c.__qualname__}" for c in SUPPORTED_BASES]
    if not (isinstance(base_cls, type) and issubclass(base_cls, SUPPORTED_BASES)
            and base_cls.forward in [c.forward for c in SUPPORTED_BASES]):
        raise ValueError(
            f"SlabUNet: base_network_class_name {name!r} is not supported. SlabUNet builds the planned 2d network, "
            f"runs its encoder and decoder as decoder(encoder(x)) and adds depth modules to their conv blocks, which "
            f"it knows for {' and '.join(supported)} (what nnU-Net's default and ResEnc planners plan). Plan the "
            f"dataset's 2d configuration with one of those")


def in_plane(sizes, name: str):
    """Per-stage kernel sizes or strides as 2-D; 3-D entries must not touch depth."""
    out = []
    for s in sizes:
        s = [s, s] if isinstance(s, int) else list(s)
        if len(s) == 3:
            if s[0] != 1:
                raise ValueError(f"SlabUNet: {name} {sizes} act along depth; slab networks convolve and pool "
                                 f"in-plane only, so every entry must be (1, y, x) or (y, x)")
            s = s[1:]
        out.append(s)
    return out


def conv_units(block: nn.Module) -> List[Tuple[nn.Module, str]]:
    """(parent, attribute) of each conv+norm+nonlin unit of a block, in order."""
    if isinstance(block, StackedConvBlocks):
        return [(block.convs, str(i)) for i in range(len(block.convs))]
    if isinstance(block, BasicBlockD):
        return [(block, "conv1"), (block, "conv2")]
    if isinstance(block, BottleneckD):
        return [(block, "conv1"), (block, "conv2"), (block, "conv3")]
    return []


class SlabUNet(nn.Module):
    """(B, C, D, H, W) -> (B, K, D, H, W); under deep supervision a list, finest first.

    Depth is folded into the batch once, so every conv, norm and pooling is the planned
    2D network's own op; the depth shift modules alone see across slices. Parameter
    names are those of the 2D network plus the modules', so 2D weights load with strict=False.

    placement: 'block' puts one module after the first conv unit of every block except the
    input block (the authors' released code); 'conv' puts one after every conv unit (the
    paper's text).

    input_neighbours=k (slices as channels, "2.5D"): every slice is fed with its k neighbours on
    each side as extra input channels, so the first conv takes C*(2k+1) channels, ordered
    modality-major: channel m*(2k+1) + k + o is modality m of slice j+o, o = -k..k (for one
    modality: slices j-k..j+k). Neighbours beyond the stack's ends are zeros; volumes in a
    batch never see each other's slices. With dsm="none" this is nnU-Net's planned 2d network
    with a wider first conv (the slices-as-channels baseline).

    Output slice i depends on input slices i-`reach`..i+`reach` only: whole-stack prediction runs a deep stack
    exactly in chunks (whole_stack_predictor.in_chunks).
    """

    recompute_module_outputs: bool = True  # see recompute.py; compiled graphs plan their own memory

    def __init__(self, input_channels: int, num_classes: int,
                 base_network_class_name: str = DEFAULT_BASE,
                 dsm: str = "distill", alpha: float = 0.5, placement: str = "block",
                 shift_fraction: float = 1 / 8, input_neighbours: int = 0, deep_supervision: bool = False,
                 **unet_kwargs):
        super().__init__()
        if dsm not in DSM_KINDS:
            raise ValueError(f"SlabUNet: dsm must be one of {DSM_KINDS}, got {dsm!r}")
        if placement not in PLACEMENTS:
            raise ValueError(f"SlabUNet: placement must be one of {PLACEMENTS}, got {placement!r}")
        if isinstance(input_neighbours, bool) or not isinstance(input_neighbours, int) or input_neighbours < 0:
            raise ValueError(f"SlabUNet: input_neighbours must be an integer >= 0 (slices on each side fed as "
                             f"input channels), got {input_neighbours!r}")
        base_cls = pydoc.locate(base_network_class_name)
        if base_cls is None:
            raise ValueError(f"SlabUNet: base_network_class_name {base_network_class_name!r} cannot be imported")
        check_base(base_cls, base_network_class_name)
        for key in ("kernel_sizes", "strides"):
            if key in unet_kwargs:
                unet_kwargs[key] = in_plane(unet_kwargs[key], key)
        conv_op = unet_kwargs.get("conv_op", nn.Conv2d)
        if conv_op is not nn.Conv2d:
            raise ValueError(f"SlabUNet: conv_op must be torch.nn.Conv2d (the planned 2d configuration), got {conv_op}")

        self.input_neighbours = input_neighbours
        unet = base_cls(input_channels=input_channels * (2 * input_neighbours + 1), num_classes=num_classes,
                        deep_supervision=deep_supervision, **unet_kwargs)
        self.encoder, self.decoder = unet.encoder, unet.decoder
        self._initialize = type(unet).initialize
        self.dsm_kind, self.placement = dsm, placement
        stem = getattr(self.encoder, "stem", None)
        input_block = stem if stem is not None else self.encoder.stages[0]
        skip = set(input_block.modules()) if placement == "block" else set()
        for block in list(self.modules()):
            units = conv_units(block) if block not in skip else []
            for parent, name in (units[:1] if placement == "block" else units):
                unit = getattr(parent, name)
                if not isinstance(unit, ConvDropoutNormReLU):
                    raise TypeError(f"SlabUNet: {type(block).__name__}.{name} of {base_network_class_name} is a "
                                    f"{type(unit).__name__}, not the conv+norm+nonlin unit (ConvDropoutNormReLU) a "
                                    f"depth module is appended to")
                module = make_dsm(dsm, unit.conv.out_channels, alpha, shift_fraction)
                if module is not None:
                    unit.all_modules.append(module)
        self._depth_modules = [m for m in self.modules() if isinstance(m, DepthShiftModule)]

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        if x.ndim != 5:
            raise ValueError(f"SlabUNet expects (B, C, D, H, W), got shape {tuple(x.shape)}")
        if not self.training and not torch.compiler.is_compiling() and not torch.isfinite(x).all():
            # nnU-Net's z-score normalization spreads one bad voxel over the whole image, and the
            # predictor would silently write an all-background segmentation
            raise ValueError("SlabUNet: the input holds NaN or inf values. The image being predicted (nnU-Net "
                             "prints 'Predicting CASE:' just before) has NaN or inf voxels. Replace them in the "
                             "image file (e.g. numpy.nan_to_num) and predict again")
        if self.recompute_module_outputs and torch.is_grad_enabled() and not torch.compiler.is_compiling():
            with recompute_outputs(self._depth_modules):
                return self._forward_slab(x)
        return self._forward_slab(x)

    @property
    def reach(self) -> int:
        """How many slices away an input slice can change an output slice: one per module on the path,
        plus the neighbours fed as input channels."""
        return len(self._depth_modules) + self.input_neighbours

    def neighbours_as_channels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, C*(2k+1), D, H, W): channel m*(2k+1) + k + o holds modality m of slice
        j+o (zeros beyond the stack's ends), k = input_neighbours."""
        k = self.input_neighbours
        if not k:
            return x
        b, c, depth, h, w = x.shape
        padded = F.pad(x, (0, 0, 0, 0, k, k))
        stacked = torch.stack([padded[:, :, o:o + depth] for o in range(2 * k + 1)], dim=2)
        return stacked.reshape(b, c * (2 * k + 1), depth, h, w)

    def _forward_slab(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        depth = x.shape[2]
        for m in self._depth_modules:
            m.depth = depth
        out = self.decoder(self.encoder(fold_depth(self.neighbours_as_channels(x))))
        if isinstance(out, (list, tuple)):
            return [unfold_depth(o, depth) for o in out]
        return unfold_depth(out, depth)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """torch's loading, with a message that says what a mismatch usually means here."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as e:
            prefixes = tuple(name + "." for name, m in self.named_modules() if isinstance(m, DepthShiftModule))
            module_keys = [k for k in self.state_dict() if k.startswith(prefixes)]
            found = sum(k in state_dict for k in module_keys)
            raise RuntimeError(
                f"SlabUNet ({self.dsm_kind} modules, placement {self.placement!r}, {self.input_neighbours} "
                f"neighbour slice(s) each side as input channels): these weights do not fit. "
                f"The checkpoint was most likely trained with another trainer, dataset or plans than the plans.json "
                f"next to it describes ({found} of this network's {len(module_keys)} depth-module tensors are in the "
                f"weights). Predict with the -tr/-p/-c the checkpoint was trained with, keeping the "
                f"plans.json nnU-Net saved into that model folder. torch says: {str(e).splitlines()[0]} "
                f"{' '.join(str(e).splitlines()[1:])[:400]}") from None

    def initialize(self, module: nn.Module) -> None:
        """nnU-Net's `network.apply(network.initialize)`: the base network's own init."""
        self._initialize(module)
