"""Turn nnU-Net's planned 2d configuration into a slab configuration.

The result is written into the plans the trainer trains with, and nnU-Net saves those
plans as the results folder's plans.json, so stock `nnUNetv2_predict -c 2d` runs the
slab network over overlapping [D, H, W] slabs with no code of ours on the inference path
except the network class.
"""
import copy
import dataclasses
from typing import Optional

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_distilldsm.architectures.depth_shift import check_alpha, check_shift_fraction

SLAB_NETWORK = "nnunet_distilldsm.architectures.slab_unet.SlabUNet"


@dataclasses.dataclass(frozen=True)
class SlabRecipe:
    """What a slab trainer trains: which depth modules, where, and how slabs are cut. Plain values, so a
    trainer variant is one line: `recipe = dataclasses.replace(Base.recipe, alpha=1.0)`."""
    dsm: str = "none"  # "distill", "residual" or "none" (nnU-Net's 2d U-Net on slabs)
    alpha: float = 0.5  # Distill DSM: share of each slice's channels distilled
    placement: str = "block"  # "block": a module after each conv block; "conv": after every conv
    shift_fraction: float = 1 / 8  # Residual DSM: share of channels shifted each way
    slab_depth: Optional[int] = None  # None: whole median stack if it fits the 2d batch shared by slabs_per_batch
    slabs_per_batch: int = 1  # at least this many slabs (cases) per batch, of fewer slices each
    input_neighbours: int = 0  # k: each slice also gets its k neighbours on both sides as input channels
    # nnU-Net forces foreground into the last 33% of a batch, which is no sample at all at one slab per batch
    # (round(0.67) = 1). Its probabilistic rule forces each slab with p = 0.33: the 2d batch's share at any batch.
    oversample_probabilistically: bool = True
    module_start: str = "initialised"  # how `nnunet-distilldsm from-2d` starts the modules (see from_2d.py)


class SlabPlanError(ValueError):
    """A plan or dataset the slab trainers cannot train; the message says what to do instead."""


def with_leading_one(sizes):
    return [[1, *s] if len(s) == 2 else list(s) for s in sizes]


# the shallowest slab the trainer chooses itself: below 3 slices no slice has a neighbour on both sides. A recipe's
# slab_depth may go down to 1 (the slab trainers augment any depth: slab_augmentation.py)
MIN_DEFAULT_SLAB_DEPTH = 3


def slab_depth_and_batch(median_depth: int, batch_2d: int, slab_depth: Optional[int] = None,
                         min_batch: int = 1):
    """(slab depth D, batch of slabs) with about the voxels of the planned 2D batch.

    Default D: the whole median stack if it fits the 2D batch's slices shared by `min_batch`
    slabs, else the largest D that does, and never fewer than MIN_DEFAULT_SLAB_DEPTH slices (a
    planned 2d batch of 2 would otherwise give 2-slice slabs, where no slice has two neighbours).
    At least `min_batch` slabs (DDP needs one per rank).
    """
    depth = slab_depth if slab_depth is not None else \
        max(MIN_DEFAULT_SLAB_DEPTH, min(median_depth, batch_2d // max(min_batch, 1)))
    batch = max(min_batch, round(batch_2d / depth))
    return int(depth), int(batch)


def make_slab_plans(plans: dict, configuration: str, recipe: SlabRecipe, min_slabs: int = 1,
                    trainer_name: str = "DistillDSMTrainer") -> dict:
    """A copy of `plans` whose `configuration` trains SlabUNet on [D, H, W] slabs of the 2d data, as `recipe` says.

    min_slabs: at least this many slabs per batch, over the recipe's own (the DDP world size).
    """
    dsm, alpha, placement, shift_fraction = recipe.dsm, recipe.alpha, recipe.placement, recipe.shift_fraction
    slab_depth, input_neighbours = recipe.slab_depth, recipe.input_neighbours
    available = list(plans.get("configurations", {}))
    if configuration not in available:
        raise SlabPlanError(
            f"{trainer_name}: the plans have no {configuration!r} configuration (they have {available}). "
            f"{trainer_name} trains nnU-Net's planned 2d configuration: run nnUNetv2_plan_and_preprocess "
            f"-d DATASET -c 2d, then nnUNetv2_train DATASET 2d FOLD -tr {trainer_name}")
    resolved = PlansManager(copy.deepcopy(plans)).get_configuration(configuration).configuration
    arch = resolved["architecture"]
    if arch["network_class_name"] == SLAB_NETWORK:
        return plans  # already a slab plan (e.g. a results folder's plans.json)
    if len(resolved["patch_size"]) != 2:
        raise SlabPlanError(
            f"{trainer_name} trains nnU-Net's 2d configuration, not {configuration!r} (patch "
            f"{resolved['patch_size']}). Run: nnUNetv2_train DATASET 2d FOLD -tr {trainer_name}")
    median_depth = int(round(plans["original_median_shape_after_transp"][0]))
    if slab_depth is None and median_depth < 2:
        raise SlabPlanError(
            f"{trainer_name}: the dataset's images have a median of {median_depth} slice(s); Distill DSM needs "
            f"volumes (several slices per case) to share features between slices. For true 2D images use "
            f"the stock trainer: nnUNetv2_train DATASET 2d FOLD")
    if slab_depth is not None and slab_depth < 1:
        raise SlabPlanError(f"{trainer_name}: slab depth must be >= 1, got {slab_depth}")
    kwargs = copy.deepcopy(arch["arch_kwargs"])
    for stage, features in enumerate(kwargs["features_per_stage"]):
        try:  # the modules' own rules, so a setting the network would refuse fails here, at trainer start
            if dsm == "distill":
                check_alpha(alpha, features)
            elif dsm == "residual":
                check_shift_fraction(shift_fraction, features)
        except ValueError as e:
            setting = "alpha" if dsm == "distill" else "shift_fraction"
            raise SlabPlanError(f"{trainer_name}: {e} (checked at stage {stage} of the planned 2d network, {features} "
                                f"channels). Set {setting} in the trainer's recipe to a value that fits") from None
    depth, batch = slab_depth_and_batch(median_depth, resolved["batch_size"], slab_depth,
                                        max(min_slabs, recipe.slabs_per_batch))
    kwargs.update(
        kernel_sizes=with_leading_one(kwargs["kernel_sizes"]),
        strides=with_leading_one(kwargs["strides"]),
        base_network_class_name=arch["network_class_name"],
        dsm=dsm, alpha=alpha, placement=placement, shift_fraction=shift_fraction,
    )
    if input_neighbours:  # only then: the plans of the trainers without input neighbours carry no such key
        kwargs.update(input_neighbours=input_neighbours)
    resolved = copy.deepcopy(resolved)
    resolved.pop("inherits_from", None)
    resolved.update(
        patch_size=[depth, *resolved["patch_size"]],
        batch_size=batch,
        architecture={"network_class_name": SLAB_NETWORK, "arch_kwargs": kwargs,
                      "_kw_requires_import": list(arch["_kw_requires_import"])},
    )
    new_plans = copy.deepcopy(plans)
    new_plans["configurations"][configuration] = resolved
    return new_plans
