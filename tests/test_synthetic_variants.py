"""The synthetic datasets' variants (synthetic.VARIANTS): the harder "ends" variant, and the default kept as it was."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from benchmarks.synthetic import ENDS_TAPER_SLICES, VARIANTS, make_case, write_dataset

N_CASES = 60


def _objects(label):
    """{label: [per-slice areas (voxels) of each object, its slices top to bottom]}; objects of a kind do not touch."""
    out = {1: [], 2: []}
    for k in out:
        components, n = ndimage.label(label == k)
        for j in range(1, n + 1):
            areas = (components == j).sum(axis=(1, 2))
            out[k].append(areas[areas > 0])
    return out


@pytest.fixture(scope="module")
def ends_cases():
    rng = np.random.default_rng(7)
    return [make_case(rng, variant="ends") for _ in range(N_CASES)]


def _best_threshold_accuracy(a, b):
    """Accuracy of the best rule "value <= t is one class, else the other" telling samples a from samples b."""
    values = np.concatenate([a, b])
    is_a = np.concatenate([np.ones(len(a), bool), np.zeros(len(b), bool)])
    best = 0.0
    for t in np.unique(values):
        below = values <= t
        acc = (below == is_a).mean()
        best = max(best, acc, 1 - acc)
    return best


def test_ends_variant_single_middle_slices_cannot_tell_the_classes_apart(ends_cases):
    mid_areas, intensity_gap, heights = {1: [], 2: []}, [], {1: [], 2: []}
    for image, label in ends_cases:
        for k, objects in _objects(label).items():
            for areas in objects:
                heights[k].append(len(areas))
                middle = areas[ENDS_TAPER_SLICES:-ENDS_TAPER_SLICES]
                assert len(middle) >= 4  # most of every object is its middle
                assert (middle == middle[0]).all()  # both kinds keep one disk through their middle
                mid_areas[k].extend(middle)
        zs = [z for z in range(label.shape[0]) if (label[z] == 1).any() and (label[z] == 2).any()]
        for z in zs:  # same intensity within a volume
            intensity_gap.append(image[z][label[z] == 1].mean() - image[z][label[z] == 2].mean())
    for k in (1, 2):
        assert len(mid_areas[k]) > 500 and min(heights[k]) == 8 and max(heights[k]) == 12
    # the same disks in both: the same range of areas, and no size threshold tells them apart
    assert min(mid_areas[1]) < np.pi * 6.5 ** 2 and min(mid_areas[2]) < np.pi * 6.5 ** 2
    assert max(mid_areas[1]) > np.pi * 9.5 ** 2 and max(mid_areas[2]) > np.pi * 9.5 ** 2
    assert np.mean(mid_areas[1]) == pytest.approx(np.mean(mid_areas[2]), rel=0.05)
    assert _best_threshold_accuracy(mid_areas[1], mid_areas[2]) < 0.6
    assert _best_threshold_accuracy(heights[1], heights[2]) < 0.6  # nor does an object's height
    scale = np.mean([image[label > 0].mean() for image, label in ends_cases])
    assert abs(np.mean(intensity_gap)) < 0.02 * scale


def test_ends_variant_classes_differ_near_their_ends(ends_cases):
    ends = {1: [], 2: []}
    second = {1: [], 2: []}
    for _, label in ends_cases:
        for k, objects in _objects(label).items():
            for areas in objects:
                ends[k] += [areas[0] / areas.max(), areas[-1] / areas.max()]
                second[k] += [areas[1] / areas.max(), areas[-2] / areas.max()]
    # flat ends keep the full disk; tapered ends shrink to about (1/3)^2 and (2/3)^2 of it
    assert min(ends[2]) == 1 and min(second[2]) == 1
    assert max(ends[1]) < 0.2 and max(second[1]) < 0.55 and min(second[1]) > 0.35
    end_areas = {k: [] for k in (1, 2)}
    for _, label in ends_cases:
        for k, objects in _objects(label).items():
            end_areas[k] += [a[0] for a in objects] + [a[-1] for a in objects]
    assert max(end_areas[1]) < min(end_areas[2])  # the outermost slice alone tells them apart


def test_ends_variant_has_both_labels_in_every_case(ends_cases):
    for image, label in ends_cases:
        assert set(np.unique(label)) == {0, 1, 2}
        assert image.shape == label.shape == (20, 48, 48)
        assert not label[0].any() and not label[-1].any()  # every end lies inside the volume
        n = sum(len(o) for o in _objects(label).values())
        assert 2 <= n <= 4


def test_default_variant_is_unchanged():
    plain = make_case(np.random.default_rng(3))
    named = make_case(np.random.default_rng(3), variant="balls")
    assert np.array_equal(plain[0], named[0]) and np.array_equal(plain[1], named[1])
    # pinned from before variants existed: the default's random draws must not move
    assert np.bincount(plain[1].ravel(), minlength=3).tolist() == [43151, 1359, 1570]
    assert float(plain[0].sum(dtype=np.float64)) == pytest.approx(231622.2173, rel=1e-6)
    ends = make_case(np.random.default_rng(3), variant="ends")
    assert not np.array_equal(plain[1], ends[1])
    with pytest.raises(ValueError, match="unknown synthetic variant"):
        make_case(np.random.default_rng(3), variant="cones")


def test_default_variant_writes_the_same_files(tmp_path):
    a = write_dataset(str(tmp_path / "a"), n_train=2, n_test=1)
    b = write_dataset(str(tmp_path / "b"), 901, n_train=2, n_test=1, variant="balls")
    assert os.path.basename(a) == os.path.basename(b) == "Dataset901_DepthContext"
    files = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert len(files) == 7
    for f in files:
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    meta = json.load(open(os.path.join(a, "dataset.json")))
    assert meta["labels"] == {"background": 0, "ball": 1, "cylinder": 2}
    assert meta["description"] == "synthetic: balls vs upright cylinders, told apart only across slices"


def test_ends_variant_writes_an_nnunet_raw_dataset(tmp_path):
    assert VARIANTS["ends"][:2] == (903, "DepthEnds") and VARIANTS["balls"][:2] == (901, "DepthContext")
    folder = write_dataset(str(tmp_path), n_train=3, n_test=2, variant="ends")
    assert folder == str(tmp_path / "Dataset903_DepthEnds")
    meta = json.load(open(os.path.join(folder, "dataset.json")))
    assert meta["labels"] == {"background": 0, "tapered": 1, "flat": 2}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz" and meta["channel_names"] == {"0": "MRI"}
    assert meta["name"] == "DepthEnds" and "taper" in meta["description"] and "flat" in meta["description"]
    listing = {sub: sorted(os.listdir(os.path.join(folder, sub))) for sub in ("imagesTr", "labelsTr", "imagesTs",
                                                                              "labelsTs")}
    assert listing["imagesTr"] == [f"case_{i:03d}_0000.nii.gz" for i in range(3)]
    assert listing["labelsTr"] == [f"case_{i:03d}.nii.gz" for i in range(3)]
    assert listing["imagesTs"] == [f"case_{i:03d}_0000.nii.gz" for i in (3, 4)]
    assert listing["labelsTs"] == [f"case_{i:03d}.nii.gz" for i in (3, 4)]
    for i in range(3):
        image = sitk.ReadImage(os.path.join(folder, "imagesTr", f"case_{i:03d}_0000.nii.gz"))
        label = sitk.ReadImage(os.path.join(folder, "labelsTr", f"case_{i:03d}.nii.gz"))
        assert image.GetSpacing() == label.GetSpacing() == (1.0, 1.0, 3.0)
        assert image.GetSize() == label.GetSize() == (48, 48, 20)
        assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 1, 2}
    # the check `nnUNetv2_plan_and_preprocess --verify_dataset_integrity` runs first (no planning)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    verify_dataset_integrity(folder, num_processes=1)


@pytest.mark.parametrize("variant, folder, dataset", [(None, "Dataset901_DepthContext", "901"),
                                                       ("ends", "Dataset903_DepthEnds", "903")])
def test_benchmark_synthetic_writes_and_uses_the_variants_dataset(tmp_path, monkeypatch, variant, folder, dataset):
    import nnunetv2.paths

    from benchmarks import benchmark
    monkeypatch.setattr(nnunetv2.paths, "nnUNet_raw", str(tmp_path))
    monkeypatch.setattr(benchmark, "require_benchmark_dependencies", lambda: None)
    calls = []
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *args: calls.append(args))
    benchmark.main(["-d", "synthetic", "--no-train", "-o", str(tmp_path / "out")]
                   + (["--variant", variant] if variant else []))
    assert os.listdir(tmp_path) == [folder] and calls[0][0] == dataset
    assert len(os.listdir(tmp_path / folder / "imagesTs")) == 20
    assert json.load(open(tmp_path / folder / "dataset.json"))["description"] == VARIANTS[variant or "balls"][2]


def test_benchmark_rejects_a_variant_without_synthetic(capsys):
    from benchmarks import benchmark
    with pytest.raises(SystemExit) as e:
        benchmark.main(["-d", "901", "--variant", "ends", "--no-train"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--variant ends only applies to -d synthetic" in err and "-d synthetic --variant ends" in err
    assert "Dataset903_DepthEnds" in err
