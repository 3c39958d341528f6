"""Annotate the committed run files: the commit that trained each model, and the trainings that shared the CPU.

trained_commit: a run file's `commit` is the commit that wrote it. Profiles reuse trained models (same trainer,
fold, seed and results folder), and a reuse predicts the same per-case results, so a model's training commit is
the `commit` of the earliest run file with the same dataset, trainer, configuration, run and per-case results.
Where the invocation that trained a model wrote no run file, that is the first commit that predicted it: the
field then says the training happened at or before it. Files that already carry trained_commit keep it.

contended: trainings documented as measured while other jobs shared the 2-core machine (README and issue notes
of 2026-11-30 to 2026-12-05), or shown to by the run files' own timings (issue 35), marked with why; the tables
leave their training seconds out.

start_contended (fine-tunes): whether the 2d model the fine-tune started from is such a training; a table's
"with its start" seconds leave those runs out. Idempotent.
Run from the repository root: python -m benchmarks.checks.mark_run_files
"""
import glob
import hashlib
import json
import os
from collections import defaultdict

from benchmarks.run_store import write_json

ROOT = "benchmarks/results/runs"
CPU_SMALL_FOLD0 = ("cpu-small fold 0 trained while other jobs shared the CPU (709 s for nnU-Net 2d against 181 and "
                   "178 in folds 1-2; 3d_fullres 1560 against 623 and 673)")
FROM_2D_FOLD1 = ("from-2d-start fold 1 (2026-11-30 19:19-19:29) shared the CPU with an unrecorded job: 9 of the 10 "
                 "fine-tune epochs took 14-21 s against 6-9 s in folds 0 and 2, and reusing 3d_fullres and per block "
                 "(predictions only) took 118 and 81 s between run files against 33 and 21 s in fold 2")
# (dataset, trainer, configuration, run, training seconds) -> why: one training, and every run file that reuses it
CONTENDED = {
    ("Dataset901_DepthContext", "nnUNetTrainer_bench", "2d", "fold0_seed0", 709): CPU_SMALL_FOLD0,
    ("Dataset901_DepthContext", "nnUNetTrainer_bench", "3d_fullres", "fold0_seed0", 1560): CPU_SMALL_FOLD0,
    ("Dataset901_DepthContext", "ResidualDSMTrainer_bench", "2d", "fold0_seed0", 831): CPU_SMALL_FOLD0,
    ("Dataset901_DepthContext", "SlicesAsChannelsTrainer_bench", "2d", "fold0_seed0", 758): CPU_SMALL_FOLD0,
    ("Dataset903_DepthEnds", "DistillDSMTrainer_perBlock_bench", "2d", "fold0_seed0", 404):
        "module-recipe on ends, fold 0: a test run shared the CPU (404 s against 152 and 166 in folds 1-2)",
    ("Dataset903_DepthEnds", "nnUNetTrainer_bench", "2d", "fold0_seed0", 241):
        ("module-recipe on ends, fold 0: 4 of its last 5 epochs took 21-39 s against a median 5.7 s, and per block's "
         "fold 0, trained next, began as slowly (a test run, marked; 241 s against 131 and 149 in folds 1-2)"),
    ("Dataset004_Hippocampus", "nnUNetTrainer_bench", "2d", "fold2_seed0", 270):
        ("hippocampus cpu-real fold 2 (2026-12-07 11:29-11:30): a 46-s test run shared the CPU; epochs 10-11 took 23 "
         "and 31 s against about 9 s (270 s against 260 and 229 in folds 0-1)"),
    ("Dataset004_Hippocampus", "ResidualDSMTrainer_bench", "2d", "fold2_seed0", 233):
        ("hippocampus cpu-real fold 2 (2026-12-07 about 11:33): short checks (imports, a smoke step) shared the CPU; "
         "epoch 2 took 15 s against about 9 s (233 s against 207 and 202 in folds 0-1)"),
    ("Dataset901_DepthContext", "DistillDSMTrainer_perBlock_from2d_bench", "2d", "fold1_seed0", 102): FROM_2D_FOLD1,
    ("Dataset901_DepthContext", "DistillDSMTrainer_identityStart_from2d_bench", "2d", "fold1_seed0", 77): FROM_2D_FOLD1,
}


def key(r: dict) -> tuple:
    return r["dataset"], r["trainer"], r["configuration"], r["run"]


def main():
    files = sorted(glob.glob(os.path.join(ROOT, "*", "*", "*", "fold*_seed*.json")))
    records = {f: json.load(open(f)) for f in files}
    first = defaultdict(list)
    for f, r in records.items():
        cases = hashlib.sha256(json.dumps(r["cases"], sort_keys=True).encode()).hexdigest()
        first[(*key(r), cases)].append((r["written"], r["commit"], f))
    for group in first.values():
        written, commit, _ = min(group)
        for _, _, f in group:
            records[f].setdefault("trained_commit", commit)
    for f, r in records.items():
        why = CONTENDED.get((*key(r), round(r["train_s"])))
        if why:
            r.update(contended=True, contention={"note": why})
        if "started_from" in r:  # a fine-tune: was the 2d model it started from trained under contention?
            start = (r["dataset"], r["started_from"], "2d", r["run"], round(r["start_train_s"]))
            r["start_contended"] = start in CONTENDED
        write_json(f, r)
    print(f"{len(files)} run files; {sum(1 for r in records.values() if r.get('contended'))} marked contended, "
          f"{sum(1 for r in records.values() if r.get('start_contended'))} fine-tunes from a contended start")


if __name__ == "__main__":
    main()
