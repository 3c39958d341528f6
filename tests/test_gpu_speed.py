"""gpu_speed.py measures the networks the trainers train, built from nnU-Net's own plans."""
import math

import pytest
import torch
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

from benchmarks.gpu_speed import SLAB_TRAINERS, measure, networks_and_inputs
from benchmarks.planned import planned_plans
from nnunet_distilldsm.trainers import DistillDSMTrainer


def test_the_distill_dsm_row_is_the_network_distilldsmtrainer_trains(tmp_path, monkeypatch):
    """Built as nnU-Net's trainer.initialize() builds it, from the trainer's own plans and settings, not by the
    benchmark's path: the same modules and weights' shapes, so a change of the default recipe reaches the GPU
    figures."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))  # the trainer's log folder
    plans = planned_plans(32, 20, str(tmp_path), spacing=(1.0, 1.0, 1.0))
    assert SLAB_TRAINERS["Distill DSM"] is DistillDSMTrainer
    measured, _ = networks_and_inputs(plans, depth=2, batch=1)["Distill DSM"]
    dataset_json = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 2,
                    "file_ending": ".nii.gz"}
    plans = dict(plans, continue_training=False)  # as nnU-Net's run_training passes them
    trainer = DistillDSMTrainer(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
    trained = trainer.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager,
        determine_num_input_channels(trainer.plans_manager, trainer.configuration_manager, dataset_json),
        trainer.label_manager.num_segmentation_heads, trainer.enable_deep_supervision)
    assert repr(measured) == repr(trained) and "DistillDSM" in repr(trained)
    assert {k: v.shape for k, v in measured.state_dict().items()} == \
        {k: v.shape for k, v in trained.state_dict().items()}


@pytest.mark.slow
def test_cpu_smoke_run_reports_ratios_to_2d(tmp_path):
    res = measure("cpu", depth=2, batch=1, size=32, volume_depth=20, warmup=1, rounds=1, workdir=str(tmp_path))
    assert set(res) == {"2d", "Distill DSM", "per block", "Residual DSM", "3d_fullres"}
    for v in res.values():  # every ratio is its own seconds per voxel over 2d's, measured in the same run
        assert v["time_vs_2d"] == pytest.approx(v["s_per_voxel"] / res["2d"]["s_per_voxel"])
    assert res["Distill DSM"]["voxels"] == res["2d"]["voxels"] == 2 * 32 * 32
    assert res["Distill DSM"]["params"] > res["per block"]["params"] > res["2d"]["params"] == \
        res["Residual DSM"]["params"]
    for v in res.values():
        assert math.isfinite(v["s_per_voxel"]) and not v["problems"]
