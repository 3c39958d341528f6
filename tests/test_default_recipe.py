"""The default is the recipe the benchmarks favoured; the variants keep the recipe their rows were measured on."""
import json
import os

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from conftest import DS
from nnunet_distilldsm.trainers import TRAINERS, DistillDSMTrainer, DistillDSMTrainer_perBlock, DistillDSMTrainer_perConv


def planned_network(trainer, plans):
    arch = trainer.slab_plans(plans, "2d")["configurations"]["2d"]["architecture"]
    return arch["arch_kwargs"], get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                                       arch["_kw_requires_import"], 1, 3, deep_supervision=False)


def test_default_puts_a_module_after_every_conv_the_per_block_variants_one_per_block(planned):
    env, _ = planned
    plans = json.load(open(os.path.join(env["nnUNet_preprocessed"], DS, "nnUNetPlans.json")))
    default, default_net = planned_network(DistillDSMTrainer, plans)
    per_block, per_block_net = planned_network(DistillDSMTrainer_perBlock, plans)
    assert default["placement"] == "conv" and per_block["placement"] == "block"
    assert default_net.reach > 2 * per_block_net.reach > 0  # every conv's module, the input block's too, adds reach
    assert planned_network(DistillDSMTrainer_perConv, plans)[0] == default  # its benchmark rows are the default's
    # every variant measured on one module per block (alpha, slabs, oversampling, from-2d starts) still plans it
    measured = [t for t in TRAINERS.values() if issubclass(t, DistillDSMTrainer_perBlock)]
    assert len(measured) > 10
    for trainer in measured:
        assert trainer.slab_plans(plans, "2d")["configurations"]["2d"]["architecture"]["arch_kwargs"][
                   "placement"] == "block", trainer.__name__
