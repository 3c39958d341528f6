"""Synthetic datasets where depth context decides the label, written in nnU-Net's raw format.

Variant "balls" (Dataset901_DepthContext, the default): every volume holds balls (label 1) and
upright cylinders (label 2) of the same intensity. Any axial slice through either is a disk, so
one slice cannot tell them apart; their neighbouring slices can (a ball's disks shrink towards
its ends, a cylinder's do not). A ball spans only 4-7 slices and nearly each of its disks differs
from the next, so a slice or two of context mostly suffices.

Variant "ends" (Dataset903_DepthEnds, harder): both labels are upright cylinders of the same
radius range (6-10 mm), height (8-12 slices) and intensity. Label 1 ("tapered") narrows to a
cone over its last 2 slices at each end (radii 2/3 and 1/3 of its own); label 2 ("flat") keeps
its full disk to its ends. All other slices (the middle 4-8 of each object, up to 4 slices from
the nearest tapered one) show the same disk in both kinds, and so do their nearest neighbours,
so a model must carry what it saw at the ends over several slices to label the middle. The
object's size and position say nothing about its label. Objects do not touch.

Slices are thicker than the in-plane pixels (anisotropic spacing), with noise and a
per-volume intensity scale, as in real scans.
"""
import json
import os
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

LABELS = {"background": 0, "ball": 1, "cylinder": 2}
ENDS_LABELS = {"background": 0, "tapered": 1, "flat": 2}
# variant -> (default dataset id, dataset name, description written to dataset.json); 902 is the real scans
VARIANTS = {
    "balls": (901, "DepthContext", "synthetic: balls vs upright cylinders, told apart only across slices"),
    "ends": (903, "DepthEnds", "synthetic: upright cylinders that taper to a cone over their last 2 slices at each "
                               "end vs cylinders with flat ends; alike in every other slice, so told apart only by "
                               "carrying context from the ends over several slices"),
}
VARIANT_LABELS = {"balls": LABELS, "ends": ENDS_LABELS}
ENDS_RADIUS_MM = (6.0, 10.0)  # both kinds
ENDS_HEIGHT_SLICES = (8, 12)  # both kinds, inclusive; the volume keeps an empty slice beyond each end
ENDS_TAPER_SLICES = 2  # the tapered kind's last slices at each end: radii r*(j+1)/(TAPER+1), j=0 outermost
ENDS_GAP_MM = 2.0  # objects whose slices overlap keep this much in-plane space between them


def _ends_case(rng: np.random.Generator, shape, spacing, n_objects: int):
    """Label volume of the "ends" variant. Objects are placed first (one that finds no free place is left out),
    then given kinds 1, 2, 1, ... in random order: later objects find less room and come out smaller, so giving
    kinds by placement order would let the disk size hint at the label."""
    z_slices = shape[0]
    y, x = np.meshgrid(*(np.arange(s) * sp for s, sp in zip(shape[1:], spacing[1:])), indexing="ij")
    extent = np.array(shape[1:]) * np.array(spacing[1:])
    label = np.zeros(shape, np.uint8)
    h_lo, h_hi = ENDS_HEIGHT_SLICES
    h_hi = min(h_hi, z_slices - 2)
    if h_hi < h_lo:
        raise ValueError(f"variant 'ends' needs at least {h_lo + 2} slices, got shape {tuple(shape)}")
    placed = []  # (z0, z1 inclusive, cy, cx, r)
    for _ in range(n_objects):
        for _ in range(200):
            r = rng.uniform(*ENDS_RADIUS_MM)
            cy, cx = (rng.uniform(r, e - r) for e in extent)
            h = int(rng.integers(h_lo, h_hi + 1))
            z0 = int(rng.integers(1, z_slices - h))  # slices z0 .. z0+h-1, empty slices at z0-1 and z0+h
            z1 = z0 + h - 1
            if all(z1 + 1 < q0 or q1 + 1 < z0 or np.hypot(cy - qy, cx - qx) > r + qr + ENDS_GAP_MM
                   for q0, q1, qy, qx, qr in placed):
                break
        else:
            continue
        placed.append((z0, z1, cy, cx, r))
    kinds = rng.permutation([1 + (i % 2) for i in range(len(placed))])
    for kind, (z0, z1, cy, cx, r) in zip(kinds, placed):
        inplane = (y - cy) ** 2 + (x - cx) ** 2
        for z in range(z0, z1 + 1):
            from_end = min(z - z0, z1 - z)
            rz = r * (from_end + 1) / (ENDS_TAPER_SLICES + 1) if kind == 1 and from_end < ENDS_TAPER_SLICES else r
            label[z][inplane <= rz ** 2] = kind
    return label


def _balls_case(rng: np.random.Generator, shape, spacing, n_objects: int):
    """Label volume of the "balls" variant: balls and cylinders of kinds 1, 2, 1, ... in placement order."""
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
    return label


def make_case(rng: np.random.Generator, shape=(20, 48, 48), spacing=(3.0, 1.0, 1.0), n_objects: int = 4,
              variant: str = "balls"):
    """One (image, label) pair as numpy arrays of `shape` (z, y, x), of `variant` (see VARIANTS)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown synthetic variant {variant!r}; choose one of {sorted(VARIANTS)}")
    label = (_ends_case if variant == "ends" else _balls_case)(rng, tuple(shape), spacing, n_objects)
    image = (label > 0).astype(np.float32) * rng.uniform(0.8, 1.2)
    image += rng.normal(0, 0.25, shape).astype(np.float32) + rng.uniform(-0.2, 0.2)
    return image * rng.uniform(50, 150), label


def write_dataset(raw_root: str, dataset_id: Optional[int] = None, name: Optional[str] = None, n_train: int = 12,
                  n_test: int = 20, shape: Sequence[int] = (20, 48, 48), spacing=(3.0, 1.0, 1.0),
                  seed: int = 0, variant: str = "balls") -> str:
    """Write Dataset{id}_{name} with imagesTr/labelsTr/imagesTs/labelsTs and dataset.json; return its folder.

    dataset_id and name default to the variant's (VARIANTS)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown synthetic variant {variant!r}; choose one of {sorted(VARIANTS)}")
    default_id, default_name, description = VARIANTS[variant]
    dataset_id = default_id if dataset_id is None else dataset_id
    name = default_name if name is None else name
    folder = os.path.join(raw_root, f"Dataset{dataset_id:03d}_{name}")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rng = np.random.default_rng(seed)
    sitk_spacing = tuple(float(s) for s in spacing[::-1])
    for i in range(n_train + n_test):
        image, label = make_case(rng, tuple(shape), spacing, variant=variant)
        split = "Tr" if i < n_train else "Ts"
        for arr, path in ((image, f"images{split}/case_{i:03d}_0000.nii.gz"), (label,
                                                                               f"labels{split}/case_{i:03d}.nii.gz")):
            itk = sitk.GetImageFromArray(arr)
            itk.SetSpacing(sitk_spacing)
            sitk.WriteImage(itk, os.path.join(folder, path))
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "MRI"}, "labels": VARIANT_LABELS[variant], "numTraining": n_train,
                   "file_ending": ".nii.gz", "name": name,
                   "description": description}, f, indent=2)
    return folder
