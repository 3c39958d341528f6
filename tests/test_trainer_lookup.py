"""nnU-Net's own lookup finds the user's trainers through `trainer-dir`, and the benchmark's only through the
benchmark's folder, each as the very class the package defines."""
import importlib.util
import inspect
import os

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

import benchmarks
import nnunet_distilldsm.trainers as trainers
from benchmarks import budget_trainers
from benchmarks.nnunet_commands import nnunet_environment
from nnunet_distilldsm import trainer_dir
from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer

USER_TRAINERS = ["DistillDSMTrainer", "DistillDSMTrainer_alpha1", "DistillDSMTrainer_perBlock", "ResidualDSMTrainer",
                 "SlabTrainer", "SlicesAsChannelsTrainer", "SlicesAsChannelsTrainer_k1"]


def offered(folder):
    """The trainer classes nnU-Net can find in an nnUNet_extTrainer folder: those its modules define or import."""
    found = set()
    for file in os.listdir(folder):
        if file.endswith(".py"):
            spec = importlib.util.spec_from_file_location(file[:-3], os.path.join(folder, file))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            found |= {name for name, obj in inspect.getmembers(module, inspect.isclass) if issubclass(obj,
                                                                                                      nnUNetTrainer)}
    return found


def test_trainer_dir_offers_the_few_user_trainers():
    assert sorted(trainers.__all__) == USER_TRAINERS
    assert offered(trainer_dir()) == set(USER_TRAINERS)


@pytest.mark.parametrize("name", USER_TRAINERS)
def test_nnunet_lookup_finds_the_package_class(name, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", trainer_dir())
    assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)


def test_benchmark_trainers_are_found_only_through_the_benchmark_folder(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", trainer_dir())
    with pytest.raises(RuntimeError, match="Could not find requested nnunet trainer"):
        recursive_find_trainer_class_by_name("DistillDSMTrainer_tiny")
    environment = nnunet_environment({"nnUNet_extTrainer": "/elsewhere"})
    assert environment["nnUNet_extTrainer"].split(os.pathsep) == ["/elsewhere", trainer_dir(), benchmarks.trainer_dir()]
    monkeypatch.setenv("nnUNet_extTrainer", environment["nnUNet_extTrainer"])
    sample = {budget_trainers.trainer_name(r, "bench") for r in budget_trainers.RECIPES} | {
        budget_trainers.trainer_name("DistillDSMTrainer", b) for b in budget_trainers.BUDGETS}
    for name in sorted(sample | set(budget_trainers.ABLATIONS)):
        assert recursive_find_trainer_class_by_name(name) is budget_trainers.find_trainer(name), name
    assert recursive_find_trainer_class_by_name("DistillDSMTrainer") is trainers.DistillDSMTrainer


def test_a_budgeted_trainer_is_its_recipe_with_a_budget():
    tiny = budget_trainers.find_trainer("DistillDSMTrainer_perBlock_tiny")
    assert tiny is budget_trainers.budgeted("DistillDSMTrainer_perBlock", "tiny")  # one class, built once
    assert issubclass(tiny,
                      trainers.DistillDSMTrainer_perBlock) and tiny.recipe == trainers.DistillDSMTrainer_perBlock.recipe
    assert tiny.iterations_per_epoch == budget_trainers.BUDGETS["tiny"][1]
    with pytest.raises(KeyError, match="no benchmark trainer for recipe 'DistillDSMTrainer' and budget 'tinyy'"):
        budget_trainers.trainer_name("DistillDSMTrainer", "tinyy")


def test_slab_trainers_share_a_neutral_base():
    assert issubclass(trainers.DistillDSMTrainer, SlabTrainer) and issubclass(trainers.ResidualDSMTrainer, SlabTrainer)
    assert not issubclass(trainers.ResidualDSMTrainer, trainers.DistillDSMTrainer)
    assert not issubclass(trainers.SlicesAsChannelsTrainer, trainers.DistillDSMTrainer)


def test_every_benchmark_model_names_a_benchmark_trainer():
    from benchmarks.profiles import PROFILES
    for models in PROFILES.values():
        for m in models:
            cls = budget_trainers.find_trainer(m.trainer)
            assert issubclass(cls, nnUNetTrainer) and cls.__name__ == m.trainer, m
