"""Networks: the depth shift modules and the slab U-Net built from nnU-Net plans."""
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, ResidualDSM, set_slab_depth
from nnunet_distilldsm.architectures.slab_unet import SlabUNet

__all__ = ["DistillDSM", "ResidualDSM", "SlabUNet", "set_slab_depth"]
