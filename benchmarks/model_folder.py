"""A trained model's network, built as nnU-Net's predictor builds it from the results folder."""
import os

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager


def network_from_model_folder(model_folder: str, fold: int, deep_supervision: bool):
    """(untrained network, configuration manager, input channels) of `model_folder`'s fold."""
    plans = PlansManager(load_json(os.path.join(model_folder, "plans.json")))
    dataset_json = load_json(os.path.join(model_folder, "dataset.json"))
    ckpt = torch.load(os.path.join(model_folder, f"fold_{fold}", "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)
    cfg = plans.get_configuration(ckpt["init_args"]["configuration"])
    n_in = determine_num_input_channels(plans, cfg, dataset_json)
    n_out = plans.get_label_manager(dataset_json).num_segmentation_heads
    trainer = recursive_find_trainer_class_by_name(ckpt["trainer_name"])
    return trainer.build_network_architecture(plans, cfg, n_in, n_out, enable_deep_supervision=deep_supervision), \
        cfg, n_in
