"""Train for a wall-clock budget instead of a number of epochs.

Equal training time by calibration (seconds per epoch measured on a short run, then a fixed number
of epochs) was biased here: a trainer bound by its data loader (nnU-Net 2d loads one case per slice
of its batch) starts each epoch from a queue its workers filled during the previous epoch's
validation, checkpoint and plot, which nnU-Net's epoch timestamps leave out; so its calibration
epoch looked faster than its training ran. In the equal-time benchmark nnU-Net 2d trained 433-629 s
on a 360 s budget, Distill DSM 361-461 s (benchmarks/results/runs/.../equal-time).

Here the trainer counts its own wall seconds, from the start of its first epoch to now (validation,
checkpoints and plots included), stops after the epoch that ends nearest to the budget, and lets
nnU-Net's poly learning rate follow the fraction of the budget spent instead of the fraction of
epochs, so the rate falls to near zero at the end as it does in nnU-Net's last epoch.
After `--c`, the epochs before the interruption count with their logged epoch seconds.
"""
import os
from time import time

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

SECONDS_VARIABLE = "NNUNET_DISTILLDSM_TRAIN_SECONDS"
EPOCH_CAP = 100_000  # nnU-Net's loop needs a number of epochs; the budget ends training long before


def seconds_from_environment(trainer_name: str) -> float:
    value = os.environ.get(SECONDS_VARIABLE, "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise RuntimeError(f"{trainer_name} trains for {SECONDS_VARIABLE} wall-clock seconds (a number > 0), got "
                           f"{value!r}: set it, or use a trainer with a fixed number of epochs (e.g. the _bench "
                           f"variant). `python -m benchmarks demo` sets it for you")
    return seconds


class BudgetPolyLR(PolyLRScheduler):
    """nnU-Net's poly schedule over the fraction of the time budget spent, not over epochs."""

    def __init__(self, optimizer, initial_lr: float, spent_fraction):
        self.spent_fraction = spent_fraction
        super().__init__(optimizer, initial_lr, max_steps=1)

    def step(self, current_step=None):
        super().step(min(self.spent_fraction(), 1.0))


class BudgetSpent(Exception):
    """Raised after the epoch that spends the budget; ends nnU-Net's epoch loop."""


class WallClockBudget:
    """Mixin before an nnUNetTrainer: train for `SECONDS_VARIABLE` seconds of wall clock."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        budget_s = seconds_from_environment(type(self).__name__)  # before nnU-Net creates any folder
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = budget_s
        self.num_epochs = EPOCH_CAP
        self.first_epoch_here = 0
        self.finished = False
        self.print_to_log_file(f"wall-clock budget: {self.budget_s:.0f} s of training")

    def spent_s(self) -> float:
        starts = self.logger.get_value("epoch_start_timestamps", None)
        ends = self.logger.get_value("epoch_end_timestamps", None)
        here = self.first_epoch_here
        before = sum(e - s for s, e in zip(starts[:here], ends[:here]))
        return before + (time() - starts[here] if len(starts) > here else 0.0)

    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        return optimizer, BudgetPolyLR(optimizer, self.initial_lr, lambda: self.rank0(self.spent_s()) / self.budget_s)

    def rank0(self, value: float) -> float:
        """Rank 0's value under DDP, so that every rank uses the same learning rate and stops after the same epoch."""
        if not self.is_ddp:
            return value
        shared = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(shared, src=0)
        return shared.item()

    def load_checkpoint(self, filename_or_checkpoint):
        super().load_checkpoint(filename_or_checkpoint)
        # --c loads checkpoint_final only when the training has ended (nnunetv2.run.run_training.maybe_load_checkpoint)
        self.finished = isinstance(filename_or_checkpoint, str) and \
            os.path.basename(filename_or_checkpoint) == "checkpoint_final.pth"

    def on_train_start(self):
        super().on_train_start()
        self.first_epoch_here = self.current_epoch  # after --c, the epochs loaded from the checkpoint
        if self.finished:
            self.num_epochs = self.current_epoch  # nnU-Net's loop then runs no epoch, as for its own trainers

    def on_epoch_end(self):
        super().on_epoch_end()
        spent = self.spent_s()
        first_start = self.logger.get_value("epoch_start_timestamps", self.first_epoch_here)
        epoch_s = (time() - first_start) / (self.current_epoch - self.first_epoch_here)  # wall seconds an epoch here
        if self.rank0(float(spent + epoch_s / 2 >= self.budget_s)):  # the epoch that ends nearest the budget
            self.print_to_log_file(f"wall-clock budget spent: {spent:.0f} s of {self.budget_s:.0f} s, "
                                   f"{self.current_epoch} epochs")
            raise BudgetSpent

    def run_training(self):
        try:
            super().run_training()
        except BudgetSpent:
            self.num_epochs = self.current_epoch
            self.on_train_end()
