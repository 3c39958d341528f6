"""The default is the recipe the benchmarks favoured; the ablations keep the recipe their rows were measured on."""
import dataclasses
import json
import os

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from benchmarks.budget_trainers import ABLATIONS
from conftest import DS
from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock


def planned_plans(planned) -> dict:
    env, _ = planned
    with open(os.path.join(env["nnUNet_preprocessed"], DS, "nnUNetPlans.json")) as f:
        return json.load(f)


def planned_network(trainer, plans):
    arch = trainer.slab_plans(plans, "2d")["configurations"]["2d"]["architecture"]
    return arch["arch_kwargs"], get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                                       arch["_kw_requires_import"], 1, 3, deep_supervision=False)


def test_default_puts_a_module_after_every_conv_the_per_block_ablations_one_per_block(planned):
    plans = planned_plans(planned)
    default, default_net = planned_network(DistillDSMTrainer, plans)
    per_block, per_block_net = planned_network(DistillDSMTrainer_perBlock, plans)
    assert default["placement"] == "conv" and per_block["placement"] == "block"
    assert default_net.reach > 2 * per_block_net.reach > 0  # every conv's module, the input block's too, adds reach
    assert planned_network(ABLATIONS["DistillDSMTrainer_perConv"], plans)[0] == default  # its rows are the default's
    # every ablation measured on one module per block (alpha, slabs, oversampling, from-2d starts) still plans it
    measured = [t for t in ABLATIONS.values() if issubclass(t, DistillDSMTrainer_perBlock)]
    assert len(measured) >= 10
    for trainer in measured:
        assert trainer.slab_plans(plans, "2d")["configurations"]["2d"]["architecture"]["arch_kwargs"][
                   "placement"] == "block", trainer.__name__


def test_the_slab_recipe_twins_on_the_default_network_differ_from_the_per_block_ones_only_in_placement(planned):
    """slab-recipe-per-conv measures on the default's network what slab-recipe measured on one module per block."""
    plans = planned_plans(planned)
    for per_conv, per_block in (("DistillDSMTrainer_perConv2slabs", "DistillDSMTrainer_2slabs"),
                                ("DistillDSMTrainer_perConv3slabs", "DistillDSMTrainer_3slabs"),
                                ("DistillDSMTrainer_perConvStockOversampling", "DistillDSMTrainer_stockOversampling")):
        per_conv, per_block = ABLATIONS[per_conv], ABLATIONS[per_block]
        conv = per_conv.slab_plans(plans, "2d")["configurations"]["2d"]
        block = per_block.slab_plans(plans, "2d")["configurations"]["2d"]
        assert conv["architecture"]["arch_kwargs"]["placement"] == "conv"
        conv["architecture"]["arch_kwargs"]["placement"] = "block"
        assert conv == block, per_conv.__name__
        assert dataclasses.replace(per_conv.recipe, placement="block") == per_block.recipe
