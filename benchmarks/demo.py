"""The demo: nnU-Net 2d and Distill DSM, same data, same training time, nnU-Net's own commands throughout.

write the synthetic dataset -> nnUNetv2_plan_and_preprocess -> for nnUNetTrainer and DistillDSMTrainer
(the same short budget): nnUNetv2_train -> nnUNetv2_predict -> nnUNetv2_evaluate_folder -> Dice side by side.
The trainings skip nnU-Net's final validation of fold 0 (budget_trainers.FINAL_VALIDATION_VARIABLE): the demo
reports the test cases' Dice, not the validation's.

The default budget is wall clock (benchmarks/wall_clock.py): each model trains the same seconds, which is
how a user spends a machine, and keeps the demo's length nearly independent of the machine's speed.
"""
import json
import os
import time

from benchmarks.budget_trainers import FINAL_VALIDATION_VARIABLE, trainer_name
from benchmarks.nnunet_commands import is_preprocessed, nnunet_environment, run_nnunet
from benchmarks.synthetic import LABELS, write_dataset
from benchmarks.wall_clock import SECONDS_VARIABLE

DATASET_ID, DATASET = 901, "Dataset901_DepthContext"
MODELS = (("nnU-Net 2d", "nnUNetTrainer"), ("Distill DSM", "DistillDSMTrainer"))
DEFAULT_TRAIN_SECONDS = 300.0  # per model; measured demo wall times in README


def demo_environment(workdir: str) -> dict:
    """os.environ plus nnU-Net's folders under `workdir` and this plugin's trainer folder."""
    env = nnunet_environment()
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        env[var] = os.path.join(workdir, sub)
        os.makedirs(env[var], exist_ok=True)
    env.setdefault("nnUNet_n_proc_DA", str(os.cpu_count() or 1))
    env[FINAL_VALIDATION_VARIABLE] = "0"  # the demo scores the test cases; nnU-Net's validation would go unread
    return env


def train_predict_evaluate(env: dict, raw: str, workdir: str, trainer: str, device: str) -> dict:
    """Foreground-class Dice of `trainer` on the test cases, per class and mean, and its training's iterations
    and wall seconds (first epoch's start to last epoch's end)."""
    run_nnunet(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", device], env, echo=True)
    pred = os.path.join(workdir, "predictions", trainer)
    run_nnunet(["nnUNetv2_predict", "-i", os.path.join(raw, "imagesTs"), "-o", pred, "-d", str(DATASET_ID), "-c", "2d",
                "-tr", trainer, "-f", "0", "-device", device], env, echo=True)
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
    model = os.path.join(env["nnUNet_results"], DATASET,
                         convert_trainer_plans_config_to_identifier(trainer, "nnUNetPlans", "2d"))
    run_nnunet(["nnUNetv2_evaluate_folder", os.path.join(raw, "labelsTs"), pred, "-djfile",
                os.path.join(model, "dataset.json"), "-pfile", os.path.join(model, "plans.json")], env, echo=True)
    summary = json.load(open(os.path.join(pred, "summary.json")))
    names = {str(v): k for k, v in LABELS.items()}
    from benchmarks.training_records import training_record
    record = training_record(model, 0)
    return {**{names[c]: m["Dice"] for c, m in summary["mean"].items()}, "mean": summary["foreground_mean"]["Dice"],
            "iterations": record["iterations"], "train_s": record["wall_s"]}


def run_demo(workdir: str = "demo_work", budget: str = "wallclock", device: str = "cpu",
             train_seconds: float = None) -> dict:
    """{model name: Dice per class and mean, iterations, train_s}; prints them side by side."""
    start = time.time()
    if budget != "wallclock" and train_seconds is not None:
        raise SystemExit(f"demo: --train-seconds goes with --budget wallclock, not --budget {budget}")
    if train_seconds is not None and not train_seconds > 0:
        raise SystemExit(f"demo: --train-seconds must be > 0, got {train_seconds}")
    workdir = os.path.abspath(workdir)
    env = demo_environment(workdir)
    if budget == "wallclock":
        env[SECONDS_VARIABLE] = str(train_seconds or DEFAULT_TRAIN_SECONDS)
    raw = os.path.join(env["nnUNet_raw"], DATASET)
    if not os.path.isfile(os.path.join(raw, "dataset.json")):
        write_dataset(env["nnUNet_raw"], DATASET_ID)
    if not is_preprocessed(os.path.join(env["nnUNet_preprocessed"], DATASET), ["2d"]):  # else: a demo run before
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "2"], env, echo=True)
    dice = {name: train_predict_evaluate(env, raw, workdir, trainer_name(recipe, budget), device)
            for name, recipe in MODELS}
    classes = [c for c in LABELS if c != "background"]
    what = f"{env[SECONDS_VARIABLE]} s of wall clock each" if budget == "wallclock" else f"the '{budget}' budget"
    print(f"\nDice on {DATASET}'s {len(os.listdir(os.path.join(raw, 'labelsTs')))} test cases, both trained "
          f"with {what} on fold 0 ({time.time() - start:.0f} s in all):")
    print(f"  {'model':<14}" + "".join(f"{c:>10}" for c in [*classes, "mean"]) + f"{'iterations':>12}{'train s':>9}")
    for name, d in dice.items():
        print(f"  {name:<14}" + "".join(f"{d[c]:>10.3f}" for c in [*classes, "mean"])
              + f"{d['iterations']:>12d}{d['train_s']:>9.0f}")
    print("Balls and cylinders look the same in any single slice; only neighbouring slices tell them apart. "
          "nnU-Net 2d sees one slice and must guess; Distill DSM's modules pass features between slices. "
          "One short CPU training each: an illustration, not a benchmark (see `python -m benchmarks benchmark`).")
    return dice
