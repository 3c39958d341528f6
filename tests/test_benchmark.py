"""The benchmark's pieces on known inputs, and a tiny benchmark run through the command."""
import csv
import math
import os

import numpy as np
import pytest
import torch

from conftest import run
from nnunet_distilldsm.benchmarks.metrics import dice, flops_per_voxel, hd95
from nnunet_distilldsm.synthetic import make_case


def test_flops_of_a_known_convolution():
    conv = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
    assert flops_per_voxel(conv, (1, 2, 10, 12)) == 2 * 2 * 4 * 9  # multiply-adds of 8 weights x 9 taps


def test_hd95_and_dice_on_shifted_boxes():
    a = np.zeros((10, 30, 30), np.uint8)
    b = np.zeros_like(a)
    a[2:8, 5:20, 5:20] = 1
    b[2:8, 5:20, 8:23] = 1  # shifted by 3 voxels along x
    assert hd95(a, b, 1, (3.0, 1.0, 0.5)) == pytest.approx(1.5)  # 3 voxels of 0.5 mm
    assert hd95(a, b, 1, (3.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert dice(a, b, 1) == pytest.approx(2 * 6 * 15 * 12 / (2 * 6 * 15 * 15))
    assert math.isnan(dice(a, b, 2)) and math.isnan(hd95(a, b, 2, (1, 1, 1)))


def test_synthetic_objects_look_alike_in_single_slices():
    image, label = make_case(np.random.default_rng(1), n_objects=2)  # one ball, one cylinder
    assert set(np.unique(label)) == {0, 1, 2}
    areas = {k: [(label[z] == k).sum() for z in range(label.shape[0]) if (label[z] == k).any()] for k in (1, 2)}
    assert np.ptp(areas[1]) > 0.3 * max(areas[1])  # a ball's disks shrink towards its ends
    assert np.median(areas[2]) == max(areas[2])  # a cylinder's keep their area
    # same intensity: a single slice of either is a bright disk on noise
    assert abs(image[label == 1].mean() - image[label == 2].mean()) < 0.1 * image[label > 0].mean()
    assert image[label > 0].mean() > image[label == 0].mean() + image[label == 0].std()


def test_tiny_benchmark_writes_table_and_plot(planned, tmp_path):
    env, _ = planned
    out = tmp_path / "bench"
    proc = run(["nnunet-distilldsm", "benchmark", "-d", "901", "--profile", "tiny", "--rounds", "2", "-o", str(out)], env)
    assert "Distill DSM: Dice" in proc.stdout
    rows = list(csv.DictReader(open(out / "results" / "Dataset901_DepthContext_tiny.csv")))
    assert [r["model"] for r in rows] == ["nnU-Net 2d", "Distill DSM", "Distill DSM, whole stack"]
    for r in rows:
        assert int(r["params"]) > 0 and float(r["flops_per_voxel"]) > 0 and float(r["infer_s_per_voxel"]) > 0
        assert 0 <= float(r["dice_mean"].split(" ")[0]) <= 1 and float(r["peak_train_mem_mb"]) > 0
    assert rows[0]["infer_s_per_voxel_vs_2d"] == "1.00"
    assert int(rows[1]["params"]) > int(rows[0]["params"])  # Distill DSM adds the modules' parameters
    assert rows[2]["params"] == rows[1]["params"]  # the same model, predicted whole-stack
    assert os.path.getsize(out / "results" / "Dataset901_DepthContext_tiny.png") > 10_000
    assert "| Distill DSM |" in (out / "results" / "Dataset901_DepthContext_tiny.md").read_text()
