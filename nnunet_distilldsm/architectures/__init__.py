"""Networks: the depth shift modules, the slab U-Net built from nnU-Net plans, the paper's U-Net."""
from nnunet_distilldsm.architectures.depth_shift import DistillDSM, ResidualDSM, set_slab_depth
from nnunet_distilldsm.architectures.paper_unet import PaperUNet
from nnunet_distilldsm.architectures.slab_unet import SlabUNet

__all__ = ["DistillDSM", "ResidualDSM", "SlabUNet", "PaperUNet", "set_slab_depth"]
