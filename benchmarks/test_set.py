"""Score a labelled folder of extra cases, kept out of the folds, with every trained fold's model and their ensemble.

Prediction and scoring are nnU-Net's own, as a user runs them: `nnUNetv2_predict` (`nnunet-distilldsm predict`
for a whole-stack row), without worker processes (-npp 0 -nps 0), and the per-case Dice of
`nnUNetv2_evaluate_folder` (its `compute_metrics`, called in this process), which the run files keep
(HD95 beside it, from metrics.py). Each fold's model gives one run file under the profile `<profile>-test`, so the
tables pair models by run and by test case (every run predicts the same cases); the folds given with -f, when more
than one is trained, also predict as one ensemble (nnU-Net averages their probabilities), recorded apart: an
ensemble is one model, not another run.
"""
import glob
import os
import time

from benchmarks import report, say
from benchmarks.cases import evaluate, labelled_cases
from benchmarks.nnunet_commands import run_nnunet
from benchmarks.run_store import (
    case_dice,
    profile_folder,
    read_json,
    run_file,
    run_id,
    slug,
    source_commit,
    write_json,
)
from benchmarks.training_records import trained_by, training_record

ENSEMBLE_FILE = "ensemble_seed{seed}.json"


def test_profile(profile: str) -> str:
    return f"{profile}-test"


def predict_command(study, model, folds, images: str, out: str):
    tool = ["nnunet-distilldsm", "predict"] if model.predictor == "whole-stack" else ["nnUNetv2_predict"]
    return [*tool, "-i", images, "-o", out, "-d", study.dataset, "-p", study.plans, "-c", model.configuration,
            "-tr", model.trainer, "-f", *map(str, folds), "-device", study.device, "-npp", "0", "-nps", "0"]


def nnunet_scores(study, model, seed: int, labels: str, pred_dir: str, case_ids) -> dict:
    """{case: {label name: Dice}} by nnU-Net's `compute_metrics`, the per-case function nnUNetv2_evaluate_folder
    maps over a folder, with the reader and classes the command would use (NaN, absent from both: null). Called
    in this process: the command's spawned worker imports torch and nnU-Net again for every model and fold."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    dataset_json = read_json(os.path.join(study.raw, "dataset.json"))
    plans = PlansManager(os.path.join(study.model_folder(model.trainer, model.configuration, seed), "plans.json"))
    label_manager = plans.get_label_manager(dataset_json)
    classes = label_manager.foreground_regions if label_manager.has_regions else label_manager.foreground_labels
    missing = [c for c in case_ids if not os.path.isfile(os.path.join(pred_dir, c + study.ending))]
    if missing:
        raise SystemExit(f"benchmark: {len(missing)} test case(s) without a prediction in {pred_dir} (e.g. "
                         f"{missing[0]}): see the output of the predict command above")
    # as the command: the reader that opens the first reference file
    reader = determine_reader_writer_from_dataset_json(
        dataset_json, os.path.join(labels, case_ids[0] + study.ending), verbose=False)()
    names = {str(v): k for v, k in study.labels.items()}
    scores = {}
    for case in case_ids:
        file = case + study.ending
        metrics = compute_metrics(os.path.join(labels, file), os.path.join(pred_dir, file), reader, classes,
                                  label_manager.ignore_label)["metrics"]
        scores[case] = {names[str(c)]: (None if m["Dice"] != m["Dice"] else float(m["Dice"]))
                        for c, m in metrics.items() if str(c) in names}
    return scores


def score(study, model, folds, seed: int, cases, images: str, labels: str) -> dict:
    """Predict `images` with `model`'s `folds` (one fold, or their ensemble) and score them."""
    tag = run_id(folds[0], seed) if len(folds) == 1 else f"ensemble_seed{seed}"
    pred_dir = os.path.join(study.out_root, "work", study.name, test_profile(study.profile), slug(model.label), tag)
    say(f"{model.label}: predict the test set ({len(cases)} cases) with fold(s) {' '.join(map(str, folds))}")
    run_nnunet(predict_command(study, model, folds, images, pred_dir), study.environment(seed), quiet=True)
    dice = nnunet_scores(study, model, seed, labels, pred_dir, [c for c, _, _ in cases])
    ours = evaluate(cases, pred_dir, study.ending, study.labels)  # HD95 (MONAI); nnU-Net reports none
    return {c: {"dice": dice[c], "hd95": ours[c]["hd95"]} for c, _, _ in cases}


def score_test_set(study, folds, seeds, images: str, labels: str):
    """Every model's trained folds (never trains) on the labelled test folder; run files under `<profile>-test`."""
    profile = test_profile(study.profile)
    cases = labelled_cases(images, labels, study.ending)
    folder = lambda m, s: study.model_folder(m.trainer, m.configuration, s)  # noqa: E731
    for seed in seeds:
        for m in study.models:
            trained = [f for f in folds if os.path.isfile(os.path.join(folder(m, seed), f"fold_{f}",
                                                                       "checkpoint_final.pth"))]
            base = {"dataset": study.name, "profile": profile, "model": m.label, "trainer": m.trainer,
                    "configuration": m.configuration, "plans": study.plans, "predictor": m.predictor, "seed": seed,
                    "test_images": os.path.abspath(images), "cpus": os.cpu_count()}
            for f in trained:
                path = run_file(study.out_root, study.name, profile, m.label, f, seed)
                if not os.path.isfile(path):
                    write_json(path, {**base, "fold": f, "run": run_id(f, seed), **training_record(folder(m, seed), f),
                                      **trained_by(folder(m, seed), f), "commit": source_commit(),
                                      "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                      "cases": score(study, m, [f], seed, cases, images, labels)})
            path = os.path.join(os.path.dirname(run_file(study.out_root, study.name, profile, m.label, 0, seed)),
                                ENSEMBLE_FILE.format(seed=seed))
            if len(trained) > 1 and not (os.path.isfile(path) and read_json(path)["folds"] == trained):
                write_json(path, {**base, "folds": trained, "run": f"ensemble_seed{seed}", "commit": source_commit(),
                                  "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                  "cases": score(study, m, trained, seed, cases, images, labels)})


def report_test_set(study) -> str:
    """The test-set table (as the fold tables, the runs now predicting the same cases) and each ensemble's Dice."""
    profile = test_profile(study.profile)
    rows = report.aggregate(study.out_root, study.name, profile, study.models)
    if not rows:
        return ""
    pairs = report.between_models(study.out_root, study.name, profile, study.models)
    stem = report.write_tables(rows, study.out_root, study.name, profile,
                               "Every fold's model predicts the same labelled test cases, kept out of the folds "
                               "(nnUNetv2_predict, nnUNetv2_evaluate_folder).", pairs)
    with open(stem + ".md", "a") as f:
        f.write("\nPer class, the paper's way: Dice mean +- sd over the folds' models of each one's mean over the test "
                "cases:\n\n" + report.per_class_over_runs(study.out_root, study.name, profile, study.models) + "\n")
    ensembles = []
    for m in study.models:
        for path in sorted(glob.glob(os.path.join(profile_folder(study.out_root, study.name, profile),
                                                  slug(m.label), "ensemble_seed*.json"))):
            record = read_json(path)
            dice = case_dice([record])[record["run"]]
            per_class = {c: report.nanmean(v["dice"].get(c) for v in record["cases"].values())
                         for c in study.labels.values()}
            ensembles.append((m.label, record, report.nanmean(dice.values()), per_class))
    if ensembles:
        with open(stem + ".md", "a") as f:
            f.write("\nEnsembles of the folds' models (nnUNetv2_predict -f ...: probabilities averaged), on the same "
                    "cases; one model each, so no interval:\n\n| model | folds | seed | Dice | "
                    + " | ".join(study.labels.values()) + " |\n|" + "---|" * (4 + len(study.labels)) + "\n")
            for label, record, mean, per_class in ensembles:
                f.write(f"| {label} | {' '.join(map(str, record['folds']))} | {record['seed']} | {mean:.3f} | "
                        + " | ".join(f"{v:.3f}" for v in per_class.values()) + " |\n")
    say(f"wrote {stem}.md, .csv")
    return stem
