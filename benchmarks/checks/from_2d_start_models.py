"""Dice of the 2d models that a from-2d-start benchmark's fine-tunes started from, on the same test cases.

The benchmark does not evaluate a 2d start model whose "nnU-Net 2d" run file already exists, even when
the model was retrained (a new machine: same seed, unseeded augmentation workers). This predicts and
scores those models, so a fine-tune can be paired with the very model it started from:

    nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=... python -m benchmarks.checks.from_2d_start_models \
        FINE_TUNE_MODEL_SLUG -f 0 1 2

prints, per fold and pooled, the fine-tune's mean paired Dice difference to its start with the benchmark's
bootstrap interval (paired_stats.py).
"""
import argparse
import json
import os

import torch

from benchmarks.benchmark import dataset_folder, model_identifier
from benchmarks.cases import benchmark_cases, evaluate, load_predictor, predict_timed
from benchmarks.paired_stats import paired_difference
from benchmarks.run_store import case_dice, load_runs

DATASET, PROFILE, START = "Dataset901_DepthContext", "from-2d-start", "nnUNetTrainer_bench"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model",
                   help="the fine-tune's model name in the profile, e.g. 'Distill DSM from 2d, identity modules, "
                                 "2d seg layers kept'")
    p.add_argument("-f", "--folds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("-o", "--out", default="benchmarks")
    args = p.parse_args()
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results

    raw, pre = dataset_folder(nnUNet_raw, DATASET), dataset_folder(nnUNet_preprocessed, DATASET)
    labels = {v: k for k, v in json.load(open(os.path.join(raw, "dataset.json")))["labels"].items() if v > 0}
    folder = os.path.join(nnUNet_results, DATASET, model_identifier(START, "2d"))
    starts = {}
    for fold in args.folds:
        cases = benchmark_cases(raw, pre, fold, ".nii.gz")
        pred = os.path.join(args.out, "work", DATASET, "from-2d-start-models", f"fold{fold}")
        predict_timed(load_predictor("stock", folder, fold, torch.device("cpu")), cases, pred)
        starts[fold] = {"run": f"fold{fold}_seed0", "fold": fold, "seed": 0, "cases": evaluate(cases, pred, ".nii.gz",
                                                                                               labels)}
    tuned = {r["fold"]: r for r in load_runs(args.out, DATASET, PROFILE, args.model) if r["fold"] in starts}
    for fold in args.folds:
        d = case_dice([tuned[fold]])[tuned[fold]["run"]]
        s = case_dice([starts[fold]])[starts[fold]["run"]]
        print(f"fold {fold}: start {sum(s.values()) / len(s):.3f}, fine-tune {sum(d.values()) / len(d):.3f}")
    both = paired_difference(case_dice([tuned[f] for f in args.folds]), case_dice([starts[f] for f in args.folds]))
    print(f"fine-tune - its own 2d start, {len(args.folds)} runs x {len(s)} cases: {both.mean:+.3f} "
          f"[{both.lo:+.3f}, {both.hi:+.3f}] {both.verdict}")


if __name__ == "__main__":  # the predictor's workers are spawned
    main()
