"""The other trainers a user may pick, each one recipe (named as nnU-Net names its variants)."""
from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer
from nnunet_distilldsm.trainers.slab_plans import SlabRecipe


class DistillDSMTrainer_alpha1(SlabTrainer):
    """The authors' released code: one module per conv block, all channels distilled."""
    recipe = SlabRecipe(dsm="distill", placement="block", alpha=1.0)


class ResidualDSMTrainer(SlabTrainer):
    """The paper's baseline: TSM's parameter-free residual shift (1/8 of channels each way), one per conv block."""
    recipe = SlabRecipe(dsm="residual")


class SlicesAsChannelsTrainer(SlabTrainer):
    """Baseline (2.5D): nnU-Net's 2d network on slabs, each slice given its +-2 neighbours as extra input
    channels (5 x the dataset's channels, modality-major; zeros beyond the stack's ends)."""
    recipe = SlabRecipe(input_neighbours=2)


class SlicesAsChannelsTrainer_k1(SlabTrainer):
    """Slices as channels with +-1 neighbours (3 x the dataset's channels)."""
    recipe = SlabRecipe(input_neighbours=1)
