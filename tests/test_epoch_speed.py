"""epoch-speed trains through nnUNetv2_train and reads each trainer's epoch seconds from nnU-Net's log: the GPU
study's dry run on the CPU (every trainer and configuration it will train, tiny budget and sizes)."""
import json

import pytest

from benchmarks.epoch_speed import GPU_TRAINERS, main

pytestmark = pytest.mark.slow  # trains, predicts or times networks (setup.cfg)


def test_gpu_study_dry_run_on_the_cpu(tmp_path, monkeypatch):
    # one worker for augmentation and one for nnU-Net's final validation export (its default, 8 spawned
    # workers, costs more than these tiny trainings on 2 cores); the study itself leaves them to the machine
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    out = tmp_path / "epochs.json"
    # 12 volumes of 20 slices: the planned 2d batch, hence the slab, is 12 slices deep
    res = main(["--workdir", str(tmp_path / "work"), "--study", "gpu", "--sizes", "32", "--depth", "20",
                "--n-train", "12", "--budget", "tiny", "--device", "cpu", "--json", str(out),
                "--md", str(tmp_path / "epochs.md")])[32]
    assert list(res) == list(GPU_TRAINERS)  # in the study's order, whatever order they trained in
    for label, v in res.items():
        assert len(v["all_epoch_s"]) == 2 and v["epoch_s"] == v["all_epoch_s"][-1] > 0  # tiny: 2 epochs
        assert abs(v["epoch_s_vs_2d"] - v["epoch_s"] / res["nnU-Net 2d"]["epoch_s"]) < 1e-12
        assert v["iterations_per_s"] == 4 / v["epoch_s"]  # tiny: 4 iterations an epoch
        assert v["peak_gpu_mib"] is None  # logged on CUDA only
    assert len(res["nnU-Net 2d"]["patch"]) == 2 and len(res["Distill DSM (default)"]["patch"]) == 3  # slabs
    assert res["nnU-Net 3d_fullres"]["configuration"] == "3d_fullres"
    assert json.loads(out.read_text())["settings"]["budget"] == "tiny"
    assert "| 32 x 32 | Distill DSM (default) | 2d |" in (tmp_path / "epochs.md").read_text()
