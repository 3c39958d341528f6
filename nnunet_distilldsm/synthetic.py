"""A synthetic dataset where depth context decides the label, written in nnU-Net's raw format.

Every volume holds balls (label 1) and upright cylinders (label 2) of the same intensity.
Any axial slice through either is a disk, so one slice cannot tell them apart; their
neighbouring slices can (a ball's disks shrink towards its ends, a cylinder's do not).
Slices are thicker than the in-plane pixels (anisotropic spacing), with noise and a
per-volume intensity scale, as in real scans.
"""
import json
import os
from typing import Sequence

import numpy as np
import SimpleITK as sitk

LABELS = {"background": 0, "ball": 1, "cylinder": 2}


def make_case(rng: np.random.Generator, shape=(20, 48, 48), spacing=(3.0, 1.0, 1.0), n_objects: int = 4):
    """One (image, label) pair as numpy arrays of `shape` (z, y, x)."""
    z, y, x = np.meshgrid(*(np.arange(s) * sp for s, sp in zip(shape, spacing)), indexing="ij")
    label = np.zeros(shape, np.uint8)
    extent = np.array(shape) * np.array(spacing)
    for i in range(n_objects):
        kind = 1 + (i % 2)
        r = rng.uniform(6.0, 10.0)
        c = [rng.uniform(r, e - r) for e in extent]
        inplane = (y - c[1]) ** 2 + (x - c[2]) ** 2
        if kind == 1:
            mask = inplane + (z - c[0]) ** 2 <= r ** 2
        else:  # upright cylinder, as tall as a ball of the same radius, with the ball's largest disk
            mask = (inplane <= r ** 2) & (np.abs(z - c[0]) <= r)
        label[mask & (label == 0)] = kind
    image = (label > 0).astype(np.float32) * rng.uniform(0.8, 1.2)
    image += rng.normal(0, 0.25, shape).astype(np.float32) + rng.uniform(-0.2, 0.2)
    return image * rng.uniform(50, 150), label


def write_dataset(raw_root: str, dataset_id: int = 901, name: str = "DepthContext", n_train: int = 12,
                  n_test: int = 20, shape: Sequence[int] = (20, 48, 48), spacing=(3.0, 1.0, 1.0),
                  seed: int = 0) -> str:
    """Write Dataset{id}_{name} with imagesTr/labelsTr/imagesTs/labelsTs and dataset.json; return its folder."""
    folder = os.path.join(raw_root, f"Dataset{dataset_id:03d}_{name}")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rng = np.random.default_rng(seed)
    sitk_spacing = tuple(float(s) for s in spacing[::-1])
    for i in range(n_train + n_test):
        image, label = make_case(rng, tuple(shape), spacing)
        split = "Tr" if i < n_train else "Ts"
        for arr, path in ((image, f"images{split}/case_{i:03d}_0000.nii.gz"), (label, f"labels{split}/case_{i:03d}.nii.gz")):
            itk = sitk.GetImageFromArray(arr)
            itk.SetSpacing(sitk_spacing)
            sitk.WriteImage(itk, os.path.join(folder, path))
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": n_train,
                   "file_ending": ".nii.gz", "name": name,
                   "description": "synthetic: balls vs upright cylinders, told apart only across slices"}, f, indent=2)
    return folder
