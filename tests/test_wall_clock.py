"""`_wallclock` trainers: nnUNetv2_train for a wall-clock budget, with the poly learning rate over that budget."""
import os

import pytest
import torch

from conftest import results, run

pytestmark = pytest.mark.slow  # trains, predicts or times networks (setup.cfg)

BUDGET_S = 45.0  # at least 2 epochs on a busy 2-core machine (an epoch took up to 15 s)


def wall_clock_env(env, tmp_path, seconds=BUDGET_S):
    env = dict(env, nnUNet_results=str(tmp_path / "res"))
    if seconds is not None:
        env["NNUNET_DISTILLDSM_TRAIN_SECONDS"] = str(seconds)
    return env


def final_log(env, trainer):
    ckpt = torch.load(os.path.join(results(env, trainer), "fold_0", "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)
    return ckpt["logging"], ckpt["current_epoch"]


def test_training_stops_at_the_budget_and_the_learning_rate_follows_the_clock(planned, tmp_path):
    env = wall_clock_env(planned[0], tmp_path)
    trainer = "DistillDSMTrainer_wallclock"
    run(["nnUNetv2_train", "901", "2d", "0", "-tr", trainer, "-device", "cpu"], env)
    log, epochs = final_log(env, trainer)
    starts, ends, lrs = log["epoch_start_timestamps"], log["epoch_end_timestamps"], log["lrs"]
    assert epochs == len(starts) >= 2
    wall = ends[-1] - starts[0]
    epoch_wall = (starts[-1] - starts[0]) / (epochs - 1)  # wall seconds an epoch, checkpoint and plot included
    assert abs(wall - BUDGET_S) <= epoch_wall, (wall, epoch_wall)  # the epoch that ends nearest the budget
    # nnU-Net's poly rate, 0.01 * (1 - f) ** 0.9, with f the share of the budget spent when the epoch started
    assert 0.0099 < lrs[0] <= 0.01 and all(a > b for a, b in zip(lrs, lrs[1:]))
    for start, lr in zip(starts, lrs):
        spent = BUDGET_S * (1 - (lr / 0.01) ** (1 / 0.9))
        assert abs(spent - (start - starts[0])) < 0.5, (spent, start - starts[0])
    # --c of a finished training trains no further epoch
    run(["nnUNetv2_train", "901", "2d", "0", "-tr", trainer, "-device", "cpu", "--c"], env)
    assert final_log(env, trainer)[1] == epochs


def test_missing_budget_is_a_clear_error_and_writes_nothing(planned, tmp_path):
    env = wall_clock_env(planned[0], tmp_path, seconds=None)
    env.pop("NNUNET_DISTILLDSM_TRAIN_SECONDS", None)
    proc = run(["nnUNetv2_train", "901", "2d", "0", "-tr", "nnUNetTrainer_wallclock", "-device", "cpu"], env,
               check=False)
    assert proc.returncode != 0 and "NNUNET_DISTILLDSM_TRAIN_SECONDS" in proc.stderr
    assert not os.path.exists(results(env, "nnUNetTrainer_wallclock"))
