"""`_wallclock` trainers against a fake clock: a real nnU-Net trainer, in this process, whose epochs each take
EPOCH_S fake seconds, so the stop rule and the learning rate are checked exactly. The benchmark's equal-wallclock
test (test_benchmark.py) keeps one real training by the real clock."""
import os

import pytest
import torch

from benchmarks import wall_clock
from benchmarks.budget_trainers import find_trainer
from helpers import load_dataset_json, load_plans, use_nnunet_folders

BUDGET_S, EPOCH_S = 100.0, 30.0  # the third epoch ends at 90 s, nearer the budget than the fourth's 120 s


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """One fake clock for nnU-Net's epoch timestamps and the budget's own reading."""
    fake = FakeClock()
    monkeypatch.setattr("nnunetv2.training.nnUNetTrainer.nnUNetTrainer.time", fake)
    monkeypatch.setattr(wall_clock, "time", fake)
    return fake


def fake_clock_trainer(clock):
    """DistillDSMTrainer_wallclock whose epochs are 2 iterations long and take EPOCH_S seconds of the fake clock."""
    class FakeClockTrainer(find_trainer("DistillDSMTrainer_wallclock")):
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cpu")):  # explicit: nnU-Net records its init's arguments
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 2, 1

        def on_train_epoch_end(self, train_outputs):
            clock.now += EPOCH_S
            super().on_train_epoch_end(train_outputs)
    return FakeClockTrainer


@pytest.fixture
def in_process(planned, tmp_path, monkeypatch):
    """(plans, dataset.json) of the planned dataset, nnU-Net's folders set for trainers built in this process
    (which take the plans with nnU-Net's run_training's `continue_training` added)."""
    env, _ = planned
    use_nnunet_folders(monkeypatch, dict(env, nnUNet_results=str(tmp_path / "res")))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # augmentation in this process
    return load_plans(env), load_dataset_json(env)


@pytest.mark.slow
def test_training_stops_at_the_budget_and_the_learning_rate_follows_the_clock(in_process, clock, monkeypatch):
    monkeypatch.setenv(wall_clock.SECONDS_VARIABLE, str(BUDGET_S))
    plans, dataset_json = in_process
    trainer_class = fake_clock_trainer(clock)
    trainer = trainer_class({**plans, "continue_training": False}, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.run_training()
    log = {k: trainer.logger.get_value(k, step=None) for k in ("epoch_start_timestamps", "epoch_end_timestamps", "lrs")}
    assert trainer.current_epoch == trainer.num_epochs == 3 == len(log["epoch_start_timestamps"])
    assert [e - s for s, e in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])] == [EPOCH_S] * 3
    # nnU-Net's poly rate, 0.01 * (1 - f) ** 0.9, f the share of the budget spent when the epoch started
    assert log["lrs"] == pytest.approx([0.01 * (1 - e * EPOCH_S / BUDGET_S) ** 0.9 for e in range(3)], rel=1e-12)
    final = os.path.join(trainer.output_folder, "checkpoint_final.pth")
    assert os.path.isfile(final)

    # --c of a finished training (nnU-Net loads checkpoint_final) trains no further epoch
    resumed = trainer_class({**plans, "continue_training": True}, "2d", 0, dataset_json, torch.device("cpu"))
    resumed.load_checkpoint(final)
    resumed.run_training()
    assert resumed.current_epoch == 3 and len(resumed.logger.get_value("epoch_start_timestamps", step=None)) == 3
    assert torch.load(final, map_location="cpu", weights_only=False)["current_epoch"] == 3


@pytest.mark.parametrize("seconds", [None, "0", "soon"])
def test_missing_budget_is_a_clear_error_and_writes_nothing(in_process, monkeypatch, tmp_path, seconds):
    if seconds is None:
        monkeypatch.delenv(wall_clock.SECONDS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(wall_clock.SECONDS_VARIABLE, seconds)
    plans, dataset_json = in_process
    with pytest.raises(RuntimeError, match=f"nnUNetTrainer_wallclock trains for {wall_clock.SECONDS_VARIABLE} "
                                           "wall-clock seconds"):
        find_trainer("nnUNetTrainer_wallclock")({**plans, "continue_training": False}, "2d", 0, dataset_json,
                                                torch.device("cpu"))
    assert not os.path.exists(tmp_path / "res")
