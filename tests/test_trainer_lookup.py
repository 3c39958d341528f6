"""Every trainer of the package is found by nnU-Net's own lookup, as the very class the package defines."""
import inspect

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

import nnunet_distilldsm.trainers as trainers
from nnunet_distilldsm import trainer_dir
from nnunet_distilldsm.trainers import distill_dsm_trainer, short_runs, variants
from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer


def defined_trainers():
    """Every nnU-Net trainer class defined in the trainer modules, found by inspection, not by a list."""
    return sorted({obj for module in (distill_dsm_trainer, variants, short_runs)
                   for _, obj in inspect.getmembers(module, inspect.isclass)
                   if issubclass(obj, nnUNetTrainer) and obj.__module__ == module.__name__}, key=lambda c: c.__name__)


def test_every_trainer_is_exported():
    names = [c.__name__ for c in defined_trainers()]
    assert len(names) > 30 and sorted(trainers.__all__) == names
    assert {"DistillDSMTrainer", "ResidualDSMTrainer", "SlicesAsChannelsTrainer", "SlabTrainer"} <= set(names)


@pytest.mark.parametrize("cls", defined_trainers(), ids=lambda c: c.__name__)
def test_nnunet_lookup_finds_the_package_class(cls, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", trainer_dir())
    found = recursive_find_trainer_class_by_name(cls.__name__)
    assert found is cls


def test_slab_trainers_share_a_neutral_base():
    assert issubclass(trainers.DistillDSMTrainer, SlabTrainer) and issubclass(trainers.ResidualDSMTrainer, SlabTrainer)
    assert not issubclass(trainers.ResidualDSMTrainer, trainers.DistillDSMTrainer)
    assert not issubclass(trainers.SlicesAsChannelsTrainer, trainers.DistillDSMTrainer)


def test_every_benchmark_profile_names_an_exported_trainer():
    from nnunet_distilldsm.benchmarks.benchmark import PROFILES, STARTS_FROM
    named = {t for models in PROFILES.values() for _, t, _, _ in models} | set(STARTS_FROM.values())
    assert named - set(trainers.__all__) == {"nnUNetTrainer"}  # nnU-Net's own
