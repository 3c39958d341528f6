"""Helpers shared by several test files (pytest imports them from here, never from another test_*.py)."""
import json
import os

import torch

# a small planned-2d-like network: 3 stages, (1, k, k) kernels and strides as slab plans write them
SMALL = dict(n_stages=3, features_per_stage=[8, 16, 32], conv_op=torch.nn.Conv2d, kernel_sizes=[[1, 3, 3]] * 3,
             strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2]], n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[2, 2],
             conv_bias=True, norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
             nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})


NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")


def use_nnunet_folders(monkeypatch, env):
    """nnU-Net's folders and trainer folders of `env` for this process (nnU-Net 2.8 reads them at use); one that
    `env` lacks is unset. monkeypatch restores them after the test."""
    for var in NNUNET_FOLDERS:
        if var in env:
            monkeypatch.setenv(var, env[var])
        else:
            monkeypatch.delenv(var, raising=False)


def nnunet_trainer(monkeypatch, env, dataset, configuration, trainer, fold=0, continue_training=False):
    """The trainer nnUNetv2_train would build (with --c: `continue_training`), built in this process by nnU-Net's
    own lookup and constructor (run_training.get_trainer_from_args), with nnU-Net's folders and trainer folders
    from `env`."""
    from nnunetv2.run.run_training import get_trainer_from_args
    use_nnunet_folders(monkeypatch, env)
    return get_trainer_from_args(str(dataset), configuration, fold, trainer, "nnUNetPlans", continue_training,
                                 device=torch.device("cpu"))


def without_final_validation(env):
    """`env` for a training whose test reads no validation result: the benchmark's trainers (`_tiny` etc.) skip
    nnU-Net's final validation (two spawned worker pools, ~11 s a training here). Validation itself stays tested by
    the `trained`, `stock_2d` and `stock_3d` fixtures (--npz, nnUNetv2_find_best_configuration)."""
    from benchmarks.budget_trainers import FINAL_VALIDATION_VARIABLE
    return dict(env, **{FINAL_VALIDATION_VARIABLE: "0"})


def load_plans(env, plans_name="nnUNetPlans", dataset="Dataset901_DepthContext"):
    """The plans nnUNetv2_plan_and_preprocess wrote for the `planned` fixture's dataset (a dict)."""
    return json.load(open(os.path.join(env["nnUNet_preprocessed"], dataset, f"{plans_name}.json")))


def load_dataset_json(env, dataset="Dataset901_DepthContext"):
    return json.load(open(os.path.join(env["nnUNet_preprocessed"], dataset, "dataset.json")))
