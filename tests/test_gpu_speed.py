"""gpu_speed.py rebuilds nnU-Net's planned networks without nnU-Net (it runs on a bare GPU machine):
its kwargs must stay what the planner and make_slab_plans write."""
import math

from nnunet_distilldsm.benchmarks.gpu_speed import measure, planned_arch, slab_arch
from nnunet_distilldsm.benchmarks.network_speed import DEFAULT_2D, plans_around
from nnunet_distilldsm.trainers.slab_plans import make_slab_plans


def test_planned_2d_network_is_what_nnunet_plans_for_a_128_patch():
    assert planned_arch((128, 128)) == DEFAULT_2D


def test_slab_network_kwargs_are_what_make_slab_plans_writes():
    for dsm in ("distill", "residual"):
        plans = plans_around(DEFAULT_2D, (128, 128), 12, 12)
        expected = make_slab_plans(plans, "2d", dsm=dsm, slab_depth=12)["configurations"]["2d"]["architecture"]
        assert slab_arch(DEFAULT_2D, dsm) == expected


def test_cpu_smoke_run_reports_ratios_to_2d():
    res = measure("cpu", depth=2, batch=1, patch=(32, 32), patch3d=(32, 32, 32), warmup=1, rounds=1)
    assert set(res) == {"2d", "Distill DSM", "Residual DSM", "3d_fullres"}
    assert res["2d"]["time_vs_2d"] == 1.0
    assert res["Distill DSM"]["voxels"] == res["2d"]["voxels"] == 2 * 32 * 32
    assert res["Distill DSM"]["params"] > res["2d"]["params"] == res["Residual DSM"]["params"]
    for v in res.values():
        assert math.isfinite(v["s_per_voxel"]) and not v["problems"]
