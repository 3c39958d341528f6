"""SlabTrainer: nnU-Net's trainer, fed slabs of consecutive 2d slices; DistillDSMTrainer is one.

Everything but the plan is nnU-Net's own: data loading, augmentation, loss, deep
supervision, validation, checkpoints, DDP. The trainer rewrites the planned 2d
configuration into a slab configuration (`make_slab_plans`) before nnU-Net reads it.
"""
import numpy as np
import torch
import torch.distributed as dist
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_distilldsm.trainers.slab_augmentation import slab_transforms
from nnunet_distilldsm.trainers.slab_plans import SLAB_NETWORK, SlabRecipe, make_slab_plans


class SlabTrainer(nnUNetTrainer):
    """nnU-Net's planned 2d U-Net trained on slabs, as its `recipe` says (here: no depth modules, nnU-Net 2d
    on slabs). Every slab trainer derives from it and sets only its recipe."""

    recipe: SlabRecipe = SlabRecipe()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        super().__init__(self.slab_plans(plans, configuration, world_size), configuration, fold, dataset_json, device)
        self.probabilistic_oversampling = self.recipe.oversample_probabilistically

    @classmethod
    def slab_plans(cls, plans: dict, configuration: str, world_size: int = 1) -> dict:
        """The plans this trainer trains with: `plans` with `configuration` rewritten for slabs."""
        return make_slab_plans(plans, configuration, cls.recipe, world_size, cls.__name__)

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        """nnU-Net's, after checking the plans are a slab plan: the predictor calls this with the model
        folder's plans.json and the trainer named in the checkpoint, which may not belong together."""
        if configuration_manager.network_arch_class_name != SLAB_NETWORK:
            raise RuntimeError(
                f"This checkpoint was trained by a slab trainer (a SlabTrainer: DistillDSMTrainer or a variant), "
                f"but the plans.json "
                f"next to it describes {configuration_manager.network_arch_class_name}, not a slab network: the model "
                f"folder mixes files of different trainings. Put the checkpoint back into the folder it was trained "
                f"in (nnU-Net saves the slab plans.json there) and predict with that folder's -tr/-p/-c")
        return nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                        num_output_channels, enable_deep_supervision)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """In-plane rotation, scaling and mirroring only, as nnU-Net 2d does, whatever the slab depth."""
        depth, *in_plane = self.configuration_manager.patch_size
        if max(in_plane) / min(in_plane) > 1.5:
            rotation = (-15. / 360 * 2. * np.pi, 15. / 360 * 2. * np.pi)
        else:
            rotation = (-np.pi, np.pi)
        initial_patch_size = [depth, *get_patch_size(in_plane, rotation, rotation, rotation, (0.85, 1.25))]
        mirror_axes = (1, 2)
        self.inference_allowed_mirroring_axes = mirror_axes
        self.print_to_log_file(f"slab patch {self.configuration_manager.patch_size}, in-plane augmentation only")
        return rotation, True, initial_patch_size, mirror_axes

    @staticmethod
    def get_training_transforms(*args, **kwargs):
        """nnU-Net's, with the Gaussian blur in-plane (slab_augmentation.py): a slab of any depth from 1 up."""
        return slab_transforms(nnUNetTrainer.get_training_transforms(*args, **kwargs))


class DistillDSMTrainer(SlabTrainer):
    """Distill DSM, alpha 1/2, a module after every conv (the paper's text): at equal wall clock as accurate
    as one module per block on the synthetic benchmark, with steadier runs (docs/results.md)."""
    recipe = SlabRecipe(dsm="distill", placement="conv")


class DistillDSMTrainer_perBlock(SlabTrainer):
    """One Distill DSM module per conv block (the authors' code): about half the reach, about 1.15x nnU-Net 2d's
    step time against the default's 1.35x on a CPU."""
    recipe = SlabRecipe(dsm="distill", placement="block")
