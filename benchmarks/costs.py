"""A profile's costs, measured once on its first run's models: parameters and FLOPs, inference seconds per voxel
with the models taking turns for --rounds rounds, and the training step's time and memory (train_step.py, in a
process of its own)."""
import json
import os
import statistics
import subprocess
import sys
from typing import Dict

import torch

from benchmarks import say
from benchmarks.cases import benchmark_cases, load_predictor, predict_timed
from benchmarks.metrics import flops_per_voxel
from benchmarks.model_folder import network_from_model_folder
from benchmarks.run_store import cost_file, run_id, slug, source_commit, write_json


def network_cost(model_folder: str, fold: int) -> Dict[str, float]:
    net, cfg, n_in = network_from_model_folder(model_folder, fold, deep_supervision=False)
    return {"params": sum(p.numel() for p in net.parameters()),
            "flops_per_voxel": flops_per_voxel(net, (1, n_in, *cfg.patch_size))}


def measure_costs_if_missing(study, fold: int, seed: int, timing_cases: int, rounds: int):
    """Costs of every model, on this run's models; inference timed with the models taking turns."""
    if all(os.path.isfile(cost_file(study.out_root, study.name, study.profile, m.label)) for m in study.models):
        return
    if not all(os.path.isfile(os.path.join(study.model_folder(m.trainer, m.configuration, seed), f"fold_{fold}",
                                           "checkpoint_final.pth")) for m in study.models):
        return
    cases = benchmark_cases(study.raw, study.pre, fold, study.ending)[:timing_cases]
    dev = torch.device(study.device)
    predictors = {m.label: load_predictor(m.predictor, study.model_folder(m.trainer, m.configuration, seed), fold,
                                          dev) for m in study.models}
    infer = {m.label: [] for m in study.models}
    work = os.path.join(study.out_root, "work", study.name, study.profile, "timing")
    for r in range(rounds):
        for model in infer:
            say(f"{model}: time prediction, round {r + 1} of {rounds}")
            infer[model].append(predict_timed(predictors[model], cases, os.path.join(work, slug(model))))
    step_cost = {}
    for model, trainer, config in ((m.label, m.trainer, m.configuration) for m in study.models):
        folder = study.model_folder(trainer, config, seed)
        if (trainer, config) not in step_cost:
            say(f"{model}: training step cost")
            step = json.loads(subprocess.run(
                [sys.executable, "-m", "benchmarks.train_step", folder, "--fold", str(fold)],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            step_cost[trainer, config] = {**network_cost(folder, fold), **step}
        write_json(cost_file(study.out_root, study.name, study.profile, model),
                   {**step_cost[trainer, config], "infer_s_per_voxel": statistics.median(infer[model]),
                    "infer_rounds": infer[model], "timing_cases": len(cases), "measured_on": run_id(fold, seed),
                    "commit": source_commit(), "threads": torch.get_num_threads(), "cpus": os.cpu_count()})

