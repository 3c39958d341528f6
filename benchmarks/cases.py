"""The cases a run predicts and how they are scored: a dataset's imagesTs or the fold's validation cases, a
predictor of either kind, per-case Dice and HD95 of each class."""
import math
import os
import time
from typing import Dict

import numpy as np
import SimpleITK as sitk
import torch

from benchmarks.metrics import dice, hd95
from benchmarks.run_store import read_json

PREDICTORS = {"stock": "nnunetv2.inference.predict_from_raw_data.nnUNetPredictor",
              "whole-stack": "nnunet_distilldsm.whole_stack_predictor.WholeStackPredictor"}

def benchmark_cases(raw: str, preprocessed: str, fold: int, ending: str):
    """[(case id, image files, label file)]: imagesTs with labelsTs if present, else fold's validation cases."""
    if os.path.isdir(os.path.join(raw, "labelsTs")):
        return labelled_cases(os.path.join(raw, "imagesTs"), os.path.join(raw, "labelsTs"), ending)
    ids = sorted(read_json(os.path.join(preprocessed, "splits_final.json"))[fold]["val"])
    return case_files(os.path.join(raw, "imagesTr"), os.path.join(raw, "labelsTr"), ending, ids)


def case_files(images: str, labels: str, ending: str, ids):
    """[(case id, image files, label file)] of `ids`, by nnU-Net's naming rules (CASE_0000.nii.gz, ...)."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder
    files = create_lists_from_splitted_dataset_folder(images, ending, ids, num_processes=1)
    return [(i, f, os.path.join(labels, i + ending)) for i, f in zip(ids, files)]


def labelled_cases(images: str, labels: str, ending: str):
    """case_files of every case in `images`; a clear error when the folders do not pair up."""
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
    for folder in (images, labels):
        if not os.path.isdir(folder):
            raise SystemExit(f"benchmark: no folder {folder}: the images in nnU-Net's input layout "
                             f"(CASE_0000{ending}, ...), the labels a file CASE{ending} for each case")
    ids = sorted(get_identifiers_from_splitted_dataset_folder(images, ending))
    unlabelled = [i for i in ids if not os.path.isfile(os.path.join(labels, i + ending))]
    if not ids or unlabelled:
        raise SystemExit(f"benchmark: {images} holds {len(ids)} case(s) named CASE_0000{ending}"
                         + (f"; {len(unlabelled)} have no label CASE{ending} in {labels} (e.g. {unlabelled[0]})"
                            if unlabelled else "") + ": give a label for every test case")
    return case_files(images, labels, ending, ids)


def load_predictor(kind: str, model_folder: str, fold: int, device: torch.device):
    import pydoc
    predictor = pydoc.locate(PREDICTORS[kind])(device=device, verbose=False, verbose_preprocessing=False,
                                               allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder, (fold,), "checkpoint_final.pth")
    return predictor


def predict_timed(predictor, cases, out_dir: str) -> float:
    """Seconds per input voxel to predict `cases` (reading, preprocessing, network, export)."""
    os.makedirs(out_dir, exist_ok=True)
    voxels = sum(np.prod(sitk.ReadImage(c[1][0]).GetSize()) for c in cases)
    t = time.perf_counter()
    # nnU-Net's sequential prediction: no worker processes, whose start-up (seconds each call) would swamp the
    # per-voxel figure of small cases and shrink every ratio towards 1
    predictor.predict_from_files_sequential([c[1] for c in cases], [os.path.join(out_dir, c[0]) for c in cases],
                                            save_probabilities=False, overwrite=True)
    return (time.perf_counter() - t) / voxels


def evaluate(cases, pred_dir: str, ending: str, labels: Dict[int, str]) -> dict:
    """{case: {"dice": {class: v}, "hd95": {class: mm}}} with NaN written as null."""
    out = {}
    for case, _, label_file in cases:
        ref_img = sitk.ReadImage(label_file)
        ref = sitk.GetArrayFromImage(ref_img)
        pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(pred_dir, case + ending)))
        spacing = ref_img.GetSpacing()[::-1]
        clean = lambda v: None if math.isnan(v) else v  # noqa: E731
        out[case] = {"dice": {n: clean(dice(pred, ref, v)) for v, n in labels.items()},
                     "hd95": {n: clean(hd95(pred, ref, v, spacing)) for v, n in labels.items()}}
    return out
