"""The Decathlon's Task04 Hippocampus as nnU-Net raw `Dataset004_Hippocampus`, through nnU-Net's own MSD converter.

A user with the Decathlon's `Task04_Hippocampus` folder runs `nnUNetv2_convert_MSD_dataset -i Task04_Hippocampus`.
The copy this project keeps (`images/`, `labels/`, no dataset.json) is laid out here as the Decathlon ships it
(imagesTr, labelsTr, imagesTs, its dataset.json, linked, not copied) and handed to the same converter, so the raw
dataset and its dataset.json are exactly what nnU-Net writes for the Decathlon's folder.
"""
import json
import os
import shutil
import tempfile

DATASET_ID = 4  # nnU-Net's own number for the task
DATASET_NAME = "Dataset004_Hippocampus"
SHARED_COPY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "Task04_Hippocampus_dev")
# the Decathlon's dataset.json for Task04, but for the training cases present (nnU-Net checks numTraining)
MSD_FIELDS = {"name": "Hippocampus", "description": "Left and right hippocampus segmentation",
              "reference": " Vanderbilt University Medical Center", "licence": "CC-BY-SA 4.0",
              "relase": "1.0 04/05/2018", "tensorImageSize": "3D", "modality": {"0": "MRI"},
              "labels": {"0": "background", "1": "Anterior", "2": "Posterior"}}


def msd_layout(images: str, labels: str, target: str) -> str:
    """`target`/Task04_Hippocampus as the Decathlon ships it, its files linked to `images` and `labels`."""
    folder = os.path.join(target, "Task04_Hippocampus")
    cases = sorted(f for f in os.listdir(images) if f.endswith(".nii.gz") and not f.startswith((".", "_")))
    missing = [c for c in cases if not os.path.isfile(os.path.join(labels, c))]
    if not cases or missing:
        raise FileNotFoundError(f"{images}: expected images hippocampus_NNN.nii.gz, each with a label of the same "
                                f"name in {labels}; " + (f"{len(missing)} have none, e.g. {missing[0]}" if missing
                                                         else "found no images"))
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        os.makedirs(os.path.join(folder, sub))
    for c in cases:
        os.symlink(os.path.abspath(os.path.join(images, c)), os.path.join(folder, "imagesTr", c))
        os.symlink(os.path.abspath(os.path.join(labels, c)), os.path.join(folder, "labelsTr", c))
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump({**MSD_FIELDS, "numTraining": len(cases), "numTest": 0,
                   "training": [{"image": f"./imagesTr/{c}", "label": f"./labelsTr/{c}"} for c in cases],
                   "test": []}, f, indent=4)
    return folder


def write_hippocampus(nnunet_raw: str, source: str = SHARED_COPY) -> str:
    """nnU-Net raw Dataset004_Hippocampus from `source` (images/, labels/); returns its folder."""
    from nnunetv2.dataset_conversion.convert_MSD_dataset import convert_msd_dataset
    source = os.path.abspath(source)
    target = os.path.join(nnunet_raw, DATASET_NAME)
    if os.path.isfile(os.path.join(target, "dataset.json")):
        return target
    shutil.rmtree(target, ignore_errors=True)  # an interrupted conversion (dataset.json is written last)
    with tempfile.TemporaryDirectory() as scratch:
        folder = msd_layout(os.path.join(source, "images"), os.path.join(source, "labels"), scratch)
        convert_msd_dataset(folder, num_processes=1)
    return target
