"""The benchmark's raw results, one JSON file per finished training, kept in the repository.

    <out>/results/runs/<dataset>/<profile>/<model>/fold<F>_seed<S>.json   per-case Dice and HD95, cost of training
    <out>/results/runs/<dataset>/<profile>/cost/<model>.json              parameters, FLOPs, inference and step time
    <out>/results/runs/<dataset>/equal-time/calibration.json              seconds per epoch of each trainer

Tables are aggregations of whatever files are present, so a study can be split over several
invocations and machines: each invocation trains and predicts only the runs whose file is missing.
Files are written whole (temporary file, then rename), so a killed invocation leaves none half-written.
"""
import glob
import json
import os
import re
import subprocess
from typing import Dict, List


def slug(model: str) -> str:
    """A folder name for a model's display name: 'Distill DSM, whole stack' -> 'Distill_DSM_whole_stack'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", model).strip("_")


def run_id(fold: int, seed: int) -> str:
    return f"fold{fold}_seed{seed}"


def profile_folder(out_root: str, dataset: str, profile: str) -> str:
    return os.path.join(out_root, "results", "runs", dataset, profile)


def run_file(out_root: str, dataset: str, profile: str, model: str, fold: int, seed: int) -> str:
    return os.path.join(profile_folder(out_root, dataset, profile), slug(model), run_id(fold, seed) + ".json")


def cost_file(out_root: str, dataset: str, profile: str, model: str) -> str:
    return os.path.join(profile_folder(out_root, dataset, profile), "cost", slug(model) + ".json")


def write_json(path: str, record: dict):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_runs(out_root: str, dataset: str, profile: str, model: str) -> List[dict]:
    """Every finished run of `model`, sorted by run id."""
    pattern = os.path.join(profile_folder(out_root, dataset, profile), slug(model), "fold*_seed*.json")
    return [read_json(p) for p in sorted(glob.glob(pattern))]


def case_dice(runs: List[dict]) -> Dict[str, Dict[str, float]]:
    """{run: {case: Dice averaged over the foreground classes (NaN classes left out)}}."""
    out = {}
    for r in runs:
        out[r["run"]] = {}
        for case, m in r["cases"].items():
            values = [v for v in m["dice"].values() if v is not None and v == v]
            out[r["run"]][case] = sum(values) / len(values) if values else float("nan")
    return out


def source_commit() -> str:
    """The package's git commit (with '+dirty' for uncommitted changes to the package's own files, not to
    the result tables a benchmark rewrites), or 'unknown' outside a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", package],
                               cwd=here, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")



def check_budget(out_root: str, dataset: str, profile: str, budget_s: float):
    """Refuse to mix equal-time runs of different budgets in one table: their Dice answer different questions.
    Budgets are compared in whole seconds, as the model folders are named (`seed0_equal-time-360s`)."""
    folder = profile_folder(out_root, dataset, profile)
    budgets = {read_json(p).get("budget_s") for p in glob.glob(os.path.join(folder, "*", "fold*_seed*.json"))}
    other = {b for b in budgets if b is None or round(b) != round(budget_s)}
    if not other:
        return
    shown = [f"{b / 60:g}" for b in sorted(b for b in other if b is not None)] + (["none"] * (None in other))
    if len(budgets) == 1 and None not in other:
        hint = (f"pass --train-minutes {shown[0]} to add to that study, or -o ANOTHER_FOLDER for a study at another "
                f"budget")
    else:
        hint = "the folder mixes budgets: move the run files of all but one budget out of it, or use -o ANOTHER_FOLDER"
    raise SystemExit(f"benchmark: the run files under {folder} were trained with other budgets (training minutes "
                     f"per model: {', '.join(shown)}) than this invocation's {budget_s / 60:g}: {hint}")
