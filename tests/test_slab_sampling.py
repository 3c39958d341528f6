"""How slab trainers sample: foreground oversampling at any slab batch, and slabs per batch.

Each trainer is built from the planned dataset in a fresh process (nnU-Net reads its folders from
the environment at import), and nnU-Net's own data loader is asked which samples of a batch it
forces to contain foreground, over many batches.
"""
import json
import subprocess
import sys

import pytest

SHARE_OF_FORCED_SAMPLES = """
import json, os, sys
import numpy as np, torch
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from benchmarks.budget_trainers import find_trainer

pre = os.path.join(os.environ["nnUNet_preprocessed"], "Dataset901_DepthContext")
plans = json.load(open(os.path.join(pre, "nnUNetPlans.json")))
dataset_json = json.load(open(os.path.join(pre, "dataset.json")))
np.random.seed(0)
out = {}
for name in sys.argv[1:]:
    cls = find_trainer(name)
    # nnU-Net 2.8's run_training adds continue_training to the plans, and the trainer pops it
    t = cls({**plans, "continue_training": False}, "2d", 0, dataset_json, torch.device("cpu"))
    t._set_batch_size_and_oversample()  # what initialize() does first
    folder = os.path.join(pre, t.configuration_manager.data_identifier)
    patch = t.configuration_manager.patch_size
    loader = nnUNetDataLoader(infer_dataset_class(folder)(folder), t.batch_size, patch, patch, t.label_manager,
                              oversample_foreground_percent=t.oversample_foreground_percent,
                              probabilistic_oversampling=t.probabilistic_oversampling)
    forced = [loader.get_do_oversample(i) for _ in range(3000) for i in range(t.batch_size)]
    out[name] = {"batch": t.batch_size, "patch": list(patch), "share": float(np.mean(forced))}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sampling(planned, tmp_path_factory):
    env, _ = planned
    env = {**env, "nnUNet_results": str(tmp_path_factory.mktemp("sampling_results"))}  # trainers write logs there
    names = ["nnUNetTrainer", "DistillDSMTrainer", "DistillDSMTrainer_2slabs", "DistillDSMTrainer_3slabs",
             "DistillDSMTrainer_stockOversampling", "SlicesAsChannelsTrainer"]
    done = subprocess.run([sys.executable, "-c", SHARE_OF_FORCED_SAMPLES, *names], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_slabs_get_the_2d_batch_share_of_foreground_at_one_and_two_slabs_per_batch(sampling):
    share_2d = sampling["nnUNetTrainer"]["share"]
    assert 0.25 <= share_2d <= 0.4, sampling  # nnU-Net's last-33% rule on the planned 2d batch
    assert sampling["DistillDSMTrainer"]["batch"] == 1, sampling  # the fixture's whole stack fits the 2d batch
    assert sampling["DistillDSMTrainer_2slabs"]["batch"] == 2, sampling
    for name in ("DistillDSMTrainer", "DistillDSMTrainer_2slabs", "DistillDSMTrainer_3slabs",
                 "SlicesAsChannelsTrainer"):
        assert abs(sampling[name]["share"] - 0.33) < 0.03, (name, sampling[name])


def test_stock_rule_forces_no_slab_at_one_slab_per_batch(sampling):
    """The ablation keeps nnU-Net's rule, which is why the default had to change."""
    assert sampling["DistillDSMTrainer_stockOversampling"]["batch"] == 1
    assert sampling["DistillDSMTrainer_stockOversampling"]["share"] == 0.0


def test_more_slabs_per_batch_means_shallower_slabs_of_the_same_voxels(sampling):
    one, two, three = (sampling[n] for n in ("DistillDSMTrainer", "DistillDSMTrainer_2slabs",
                                             "DistillDSMTrainer_3slabs"))
    assert two["batch"] >= 2 and three["batch"] >= 3  # at least; the depth divides the 2d batch's slices
    assert two["patch"][1:] == one["patch"][1:] == three["patch"][1:]  # in-plane patch unchanged
    assert one["patch"][0] > two["patch"][0] > three["patch"][0]
    depth_2d_batch = sampling["nnUNetTrainer"]["batch"]
    for s in (one, two, three):  # never more slices per step than the 2d batch, but slabs of >= 3 slices
        assert s["patch"][0] >= 3 and s["patch"][0] * s["batch"] <= max(depth_2d_batch, 3 * s["batch"])


def test_default_slab_depth_is_at_least_three_slices():
    """A planned 2d batch of 2 (nnU-Net's floor) or a 2-slice median stack still gets 3-slice slabs, so a slice has
    neighbours on both sides; an explicit slab_depth is kept, down to 1."""
    from nnunet_distilldsm.trainers.slab_plans import slab_depth_and_batch
    assert slab_depth_and_batch(median_depth=8, batch_2d=2) == (3, 1)
    assert slab_depth_and_batch(median_depth=2, batch_2d=12) == (3, 4)
    assert slab_depth_and_batch(median_depth=20, batch_2d=12) == (12, 1)  # unchanged where it fitted
    assert slab_depth_and_batch(median_depth=8, batch_2d=2, slab_depth=2) == (2, 1)  # an explicit depth is kept
    assert slab_depth_and_batch(median_depth=8, batch_2d=2, slab_depth=1) == (1, 2)
