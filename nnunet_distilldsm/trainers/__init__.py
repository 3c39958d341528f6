"""nnU-Net trainers that train the slab network on the planned 2d configuration."""
from nnunet_distilldsm.trainers.distill_dsm_trainer import DistillDSMTrainer
from nnunet_distilldsm.trainers.short_runs import (DistillDSMTrainer_bench, DistillDSMTrainer_demo,
                                                   DistillDSMTrainer_slab4_bench, DistillDSMTrainer_slab8_bench,
                                                   DistillDSMTrainer_slab16_bench, DistillDSMTrainer_tiny, ResidualDSMTrainer_bench,
                                                   ResidualDSMTrainer_demo, ResidualDSMTrainer_tiny,
                                                   nnUNetTrainer_bench, nnUNetTrainer_demo, nnUNetTrainer_tiny)
from nnunet_distilldsm.trainers.variants import (DistillDSMTrainer_alpha025, DistillDSMTrainer_alpha1,
                                                 DistillDSMTrainer_perConv, DistillDSMTrainer_slab4,
                                                 DistillDSMTrainer_slab8, DistillDSMTrainer_slab16,
                                                 ResidualDSMTrainer, SlabUNetTrainer)

__all__ = [
    "DistillDSMTrainer", "ResidualDSMTrainer", "SlabUNetTrainer", "DistillDSMTrainer_alpha025",
    "DistillDSMTrainer_alpha1", "DistillDSMTrainer_perConv", "DistillDSMTrainer_slab4", "DistillDSMTrainer_slab8",
    "DistillDSMTrainer_slab16", "DistillDSMTrainer_tiny", "DistillDSMTrainer_demo", "ResidualDSMTrainer_tiny",
    "ResidualDSMTrainer_demo", "nnUNetTrainer_tiny", "nnUNetTrainer_demo", "DistillDSMTrainer_bench",
    "ResidualDSMTrainer_bench", "nnUNetTrainer_bench", "DistillDSMTrainer_slab4_bench", "DistillDSMTrainer_slab8_bench",
    "DistillDSMTrainer_slab16_bench",
]
