"""epoch-speed trains through nnUNetv2_train and reads each trainer's epoch seconds from nnU-Net's log."""
from nnunet_distilldsm.benchmarks.epoch_speed import epoch_seconds, table


def test_epoch_seconds_of_three_real_trainings(tmp_path):
    trainers = {"nnU-Net 2d": "nnUNetTrainer_tiny", "Distill DSM (default)": "DistillDSMTrainer_tiny",
                "Residual DSM": "ResidualDSMTrainer_tiny"}
    res = epoch_seconds(str(tmp_path), 32, trainers, depth=8, rotate=1, n_train=5)  # 5: nnU-Net's 5 folds
    assert list(res) == list(trainers)  # in the caller's order, whatever order they trained in
    assert res["nnU-Net 2d"]["ratio_to_2d"] == 1.0
    for label, v in res.items():
        assert len(v["all_epoch_s"]) == 2 and v["epoch_s"] == v["all_epoch_s"][-1] > 0
        assert abs(v["ratio_to_2d"] - v["epoch_s"] / res["nnU-Net 2d"]["epoch_s"]) < 1e-12
    assert len(res["nnU-Net 2d"]["patch"]) == 2 and len(res["Distill DSM (default)"]["patch"]) == 3  # slabs
    assert "| 32 x 32 | Distill DSM (default) |" in table({32: res})
