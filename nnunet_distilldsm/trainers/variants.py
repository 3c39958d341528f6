"""Trainer variants, each one setting, named as nnU-Net names its variants.

The DistillDSMTrainer variants derive from DistillDSMTrainer_perBlock, one module per conv block: they were
benchmarked on it (the default then), and their committed benchmark rows keep their meaning. The exceptions
name their placement: DistillDSMTrainer_perConv (the default's network) and its variants (alpha 1, and the slab
recipe's oversampling and slabs per batch, to measure them on the default's network)."""
from nnunet_distilldsm.trainers.distill_dsm_trainer import DistillDSMTrainer, DistillDSMTrainer_perBlock, SlabTrainer


class ResidualDSMTrainer(SlabTrainer):
    """The paper's baseline: TSM's parameter-free residual shift (1/8 of channels each way)."""
    dsm = "residual"


class SlabUNetTrainer(SlabTrainer):
    """Ablation: the slab network without modules, i.e. nnU-Net's 2d U-Net fed slabs."""
    dsm = "none"


class SlicesAsChannelsTrainer(SlabUNetTrainer):
    """Baseline (2.5D): nnU-Net's 2d network on slabs, each slice given its +-2 neighbours as extra input
    channels (5 x the dataset's channels, modality-major; zeros beyond the stack's ends)."""
    input_neighbours = 2


class SlicesAsChannelsTrainer_k1(SlicesAsChannelsTrainer):
    """Slices as channels with +-1 neighbours (3 x the dataset's channels)."""
    input_neighbours = 1


class DistillDSMTrainer_alpha025(DistillDSMTrainer_perBlock):
    alpha = 0.25


class DistillDSMTrainer_alpha1(DistillDSMTrainer_perBlock):
    """The authors' released code: all channels distilled."""
    alpha = 1.0


class DistillDSMTrainer_perConv(DistillDSMTrainer):
    """A module after every conv (the paper's text): the default's network since issue 11, under the name its
    benchmark rows were trained with."""
    placement = "conv"


class DistillDSMTrainer_perConvAlpha1(DistillDSMTrainer_perConv):
    """Both settings that beat the default at equal iterations (module-recipe, 3 runs): a module after every
    conv, all channels distilled."""
    alpha = 1.0


class DistillDSMTrainer_slicesAsChannels(DistillDSMTrainer_perBlock):
    """Distill DSM's modules on a network whose first conv also sees each slice's +-2 neighbours (slices as
    channels): depth context from the input on, where the modules alone start without it."""
    input_neighbours = 2


class DistillDSMTrainer_stockOversampling(DistillDSMTrainer_perBlock):
    """Ablation: nnU-Net's own foreground rule (the last 33% of a batch), which forces no slab at one slab
    per batch. The slab trainers' default before foreground oversampling was restored for slabs."""
    oversample_probabilistically = False


class DistillDSMTrainer_identityStart(DistillDSMTrainer_perBlock):
    """For a start from a 2d model: `nnunet-distilldsm from-2d` begins its modules as identity convs."""
    from_2d_modules = "identity"


class DistillDSMTrainer_identityStartSeg(DistillDSMTrainer_identityStart):
    """The same trainer, in its own results folder: the benchmark starts it with `from-2d --keep-seg-layers`."""


class DistillDSMTrainer_2slabs(DistillDSMTrainer_perBlock):
    """At least 2 slabs (cases) per batch, each half as deep: less depth context, less noisy gradients."""
    slabs_per_batch = 2


class DistillDSMTrainer_3slabs(DistillDSMTrainer_perBlock):
    slabs_per_batch = 3


class DistillDSMTrainer_perConvStockOversampling(DistillDSMTrainer_perConv):
    """The slab recipe on the default's network: nnU-Net's own foreground rule, as `_stockOversampling`."""
    oversample_probabilistically = False


class DistillDSMTrainer_perConv2slabs(DistillDSMTrainer_perConv):
    """The slab recipe on the default's network: at least 2 slabs per batch, as `_2slabs`."""
    slabs_per_batch = 2


class DistillDSMTrainer_perConv3slabs(DistillDSMTrainer_perConv):
    slabs_per_batch = 3


class DistillDSMTrainer_slab4(DistillDSMTrainer_perBlock):
    slab_depth = 4


class DistillDSMTrainer_slab8(DistillDSMTrainer_perBlock):
    slab_depth = 8


class DistillDSMTrainer_slab16(DistillDSMTrainer_perBlock):
    slab_depth = 16
