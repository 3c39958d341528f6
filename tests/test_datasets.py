"""Datasets users bring, through nnUNetv2_train and nnUNetv2_predict: slabs of 1-3 slices, volumes of 1, 2, 3 and 7
slices beside deeper ones, region-based labels, an ignore label and 3 modalities, in one small generated dataset."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import nnunet_env, plan_and_preprocess, run
from helpers import nnunet_trainer, without_final_validation

pytestmark = pytest.mark.slow  # trains and predicts with nnU-Net (setup.cfg)

DATASET_ID, DATASET = 905, "Dataset905_Assorted"
# nested regions as nnU-Net trains BraTS (whole tumour, core, enhancing), and an ignore label (unannotated voxels)
LABELS = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3, "ignore": 4}
TRAIN_DEPTHS = (1, 2, 3, 7, 12, 12, 12, 12, 12, 12)  # thin volumes beside deeper ones
TEST_DEPTHS = (1, 2, 3, 7)
SIZE = 32
# a user's own trainers, one line each, in a folder of their own on nnUNet_extTrainer (README), with a short budget
USER_TRAINERS = """from dataclasses import replace
from benchmarks.budget_trainers import DistillDSMTrainer_tiny
""" + "".join(f"""

class DSMSlab{d}_tiny(DistillDSMTrainer_tiny):
    recipe = replace(DistillDSMTrainer_tiny.recipe, slab_depth={d})
""" for d in (1, 2, 3))


def assorted_case(rng, depth):
    """(3 modalities, label): three nested balls, each modality bright inside one region, the top-left corner of
    every slice unannotated (ignore)."""
    z, y, x = np.mgrid[:depth, :SIZE, :SIZE]
    centre = (rng.uniform(0, depth - 1), rng.uniform(12, SIZE - 12), rng.uniform(12, SIZE - 12))
    r = np.sqrt(((z - centre[0]) * 3) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)  # 3 mm slices
    label = np.zeros((depth, SIZE, SIZE), np.uint8)
    for value, radius in ((1, 9), (2, 6), (3, 3)):
        label[r <= radius] = value
    images = [(rng.normal(0, 0.3, label.shape) + (label >= v)).astype(np.float32) for v in (1, 2, 3)]
    label[:, :6, :6] = 4
    return images, label


def write_assorted(raw_root):
    folder = os.path.join(raw_root, DATASET)
    rng = np.random.default_rng(905)

    def write(array, path):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing((1.0, 1.0, 3.0))
        sitk.WriteImage(img, path)

    for sub, depths in (("Tr", TRAIN_DEPTHS), ("Ts", TEST_DEPTHS)):
        os.makedirs(os.path.join(folder, f"images{sub}"))
        os.makedirs(os.path.join(folder, f"labels{sub}"))
        for i, depth in enumerate(depths):
            images, label = assorted_case(rng, depth)
            for m, image in enumerate(images):
                write(image, os.path.join(folder, f"images{sub}", f"case{sub}{i:02d}_{m:04d}.nii.gz"))
            write(label, os.path.join(folder, f"labels{sub}", f"case{sub}{i:02d}.nii.gz"))
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "A", "1": "B", "2": "C"}, "labels": LABELS, "regions_class_order": [1, 2, 3],
                   "numTraining": len(TRAIN_DEPTHS), "file_ending": ".nii.gz"}, f)


@pytest.fixture(scope="module")
def assorted(tmp_path_factory):
    """(env, user trainer folder): Dataset905 written, planned and preprocessed (2d); the trainings skip nnU-Net's
    final validation, whose results no test here reads."""
    root = tmp_path_factory.mktemp("assorted")
    user = root / "my_trainers"
    user.mkdir()
    (user / "my_trainers.py").write_text(USER_TRAINERS)
    env = without_final_validation(nnunet_env(root))
    env["nnUNet_extTrainer"] = os.pathsep.join([*env["nnUNet_extTrainer"].split(os.pathsep), str(user)])
    write_assorted(env["nnUNet_raw"])
    plan_and_preprocess(env, DATASET_ID, ["2d"])
    return env


def train_and_predict(env, trainer, out, command=("nnUNetv2_predict",)):
    """Train `trainer` (fold 0) and predict the thin test volumes; check every prediction's shape, geometry and
    values against its input. Returns the model folder."""
    run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu"], env)
    raw = os.path.join(env["nnUNet_raw"], DATASET)
    run([*command, "-i", os.path.join(raw, "imagesTs"), "-o", str(out), "-d", str(DATASET_ID), "-c", "2d", "-tr",
         trainer, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"], env)
    for i, depth in enumerate(TEST_DEPTHS):
        ref = sitk.ReadImage(os.path.join(raw, "labelsTs", f"caseTs{i:02d}.nii.gz"))
        pred = sitk.ReadImage(os.path.join(str(out), f"caseTs{i:02d}.nii.gz"))
        assert pred.GetSize() == ref.GetSize() == (SIZE, SIZE, depth)
        assert pred.GetSpacing() == ref.GetSpacing() and pred.GetOrigin() == ref.GetOrigin()
        assert set(np.unique(sitk.GetArrayFromImage(pred))) <= {0, 1, 2, 3}  # regions_class_order's labels
    return os.path.join(env["nnUNet_results"], DATASET, f"{trainer}__nnUNetPlans__2d")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_slabs_of_1_2_3_slices_train_and_predict(assorted, tmp_path, depth):
    """A user's recipe with slab_depth 1-3: nnU-Net's augmentation workers train it (the blur stays in-plane)."""
    model = train_and_predict(assorted, f"DSMSlab{depth}_tiny", tmp_path / "pred")
    plans = json.load(open(os.path.join(model, "plans.json")))
    assert plans["configurations"]["2d"]["patch_size"][0] == depth
    assert os.path.isfile(os.path.join(model, "fold_0", "checkpoint_final.pth"))


def test_default_trains_regions_ignore_label_and_three_modalities(assorted, tmp_path, monkeypatch):
    """The default through nnU-Net's commands (stock and whole-stack prediction), then one batch of its own data
    loader: region targets nest, the ignore label gets no gradient, every modality reaches the network."""
    train_and_predict(assorted, "DistillDSMTrainer_tiny", tmp_path / "stock")
    train_and_predict(assorted, "DistillDSMTrainer_tiny", tmp_path / "whole", ("nnunet-distilldsm", "predict"))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # the loader in this process
    trainer = nnunet_trainer(monkeypatch, assorted, DATASET_ID, "2d", "DistillDSMTrainer_tiny")
    trainer.initialize()
    loader, _ = trainer.get_dataloaders()
    for _ in range(30):  # augmentation may rotate the ignored corner out and a slab miss the balls: take a batch
        batch = next(loader)  # with both (foreground is forced with p = 0.33)
        data, target = batch["data"], batch["target"]
        assert data.shape[1] == 3 and data.ndim == 5  # (slabs, modalities, D, H, W)
        # nnU-Net's region targets, then its last channel: the ignore label
        whole, core, enhancing, annotated = target[0][:, 0], target[0][:, 1], target[0][:, 2], target[0][:, 3] == 0
        assert bool((enhancing <= core).all()) and bool((core <= whole).all())  # the regions nest
        if enhancing[annotated].any() and (~annotated).any():
            break
    assert enhancing[annotated].any() and (~annotated).any(), "no batch of 30 held the innermost region and ignore"
    data.requires_grad_(True)
    output = trainer.network(data)
    output[0].retain_grad()
    trainer.loss(output, target).backward()
    gradient = output[0].grad.abs().sum(dim=1)  # per voxel, over the region outputs
    assert float(gradient[~annotated].sum()) == 0 and float(gradient[annotated].sum()) > 0
    reach = data.grad.abs().sum(dim=(0, 2, 3, 4))
    assert bool((reach > 0).all()), f"gradient per modality {reach.tolist()}"


@pytest.mark.parametrize("trainer", ["SlicesAsChannelsTrainer_tiny", "ResidualDSMTrainer_tiny"])
def test_baselines_train_the_same_dataset(assorted, tmp_path, trainer):
    train_and_predict(assorted, trainer, tmp_path / "pred")
