"""Tables and plots from the run files: every figure aggregates all runs present.

Writes <out>/results/<dataset>_<profile>.md/.csv/.png, and <dataset>_tradeoff.png (Dice with
its CI against training seconds, every profile that has runs).
"""
import csv
import math
import os
import statistics
from typing import Dict, List, Sequence

import numpy as np

from benchmarks import say
from benchmarks.contention import contended
from benchmarks.paired_stats import METHOD, paired_difference
from benchmarks.profiles import PER_CLASS_PROFILES, PROFILES, TRADEOFF
from benchmarks.run_store import case_dice, cost_file, load_runs, profile_folder, read_json

REFERENCES = {"2d": "nnU-Net 2d", "3d": "nnU-Net 3d_fullres"}
# a fine-tune is plotted at its whole cost: its own training and that of the 2d model it started from
TRAIN_S_AXIS = "training seconds per run (a fine-tune's with its 2d start)"
COST_KEYS = ("params", "flops_per_voxel", "infer_s_per_voxel", "train_s_per_iter", "peak_train_mem_mb", "peak_rss_mb",
             "batch", "patch")


def nanmean(values) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return statistics.mean(v) if v else math.nan


def model_row(model: str, trainer: str, configuration: str, runs: List[dict], refs: Dict[str, List[dict]],
              cost: dict) -> dict:
    dice = case_dice(runs)
    run_means = [nanmean(cases.values()) for cases in dice.values()]
    classes = sorted({c for r in runs for m in r["cases"].values() for c in m["dice"]})
    per = lambda metric, c: nanmean(m[metric].get(c, math.nan) for r in runs for m in r["cases"].values())  # noqa
    row = {"model": model, "runs": len(runs),
           "dice_mean": nanmean(v for cases in dice.values() for v in cases.values()),
           "dice_run_sd": statistics.stdev(run_means) if len(run_means) > 1 else math.nan,
           **{f"dice_{c}": per("dice", c) for c in classes},
           "hd95_mean": nanmean(nanmean(m["hd95"].values()) for r in runs for m in r["cases"].values()),
           **{f"hd95_{c}": per("hd95", c) for c in classes}}
    mean_ci = paired_difference(dice, {r: {c: 0.0 for c in cases} for r, cases in dice.items()})
    # a t-interval knows no bounds; a mean Dice lies in [0, 1]
    row["dice_lo"], row["dice_hi"] = (max(mean_ci.lo, 0.0), min(mean_ci.hi, 1.0)) if mean_ci else (math.nan, math.nan)
    for key, ref_runs in refs.items():
        d = paired_difference(dice, case_dice(ref_runs)) if ref_runs else None
        row[f"dice_vs_{key}"], row[f"dice_vs_{key}_lo"], row[f"dice_vs_{key}_hi"] = \
            (d.mean, d.lo, d.hi) if d else (math.nan,) * 3
        row[f"verdict_vs_{key}"] = d.verdict if d and model != REFERENCES[key] else ""
    # seconds only from runs that had the machine to themselves (contention.py)
    timed = [r for r in runs if not contended(r)]
    row["train_s_runs"] = len(timed)
    row["train_s_total"] = sum(r["train_s"] for r in timed) if timed else math.nan
    # a fine-tune's cost includes the training of the model it started from, where that one was not contended
    with_start = [r for r in timed if not r.get("start_contended", False)]
    row["fine_tune"] = any("start_train_s" in r for r in runs)
    row["train_s_with_start_runs"] = len(with_start)
    row["train_s_with_start_mean"] = statistics.mean(r["train_s"] + r.get("start_train_s", 0) for r in with_start) \
        if with_start else math.nan
    row["train_s_mean"] = row["train_s_total"] / len(timed) if timed else math.nan
    # first epoch's start to last epoch's end (what equal-wallclock budgets); NaN for runs recorded before it
    row["wall_s_mean"] = statistics.mean(r.get("wall_s", math.nan) for r in timed) if timed else math.nan
    row["iterations"] = statistics.mean(r["iterations"] for r in runs)
    row.update({k: cost.get(k, math.nan) for k in COST_KEYS})
    row.update(trainer=trainer, configuration=configuration)
    return row


def aggregate(out_root: str, dataset: str, profile: str, models: Sequence) -> List[dict]:
    """One row per model that has at least one run, in the profile's order."""
    runs = {m.label: load_runs(out_root, dataset, profile, m.label) for m in models}
    refs = {k: runs.get(name, []) for k, name in REFERENCES.items()}
    rows = []
    for model, trainer, config in ((m.label, m.trainer, m.configuration) for m in models):
        if runs[model]:
            path = cost_file(out_root, dataset, profile, model)
            rows.append(model_row(model, trainer, config, runs[model], refs,
                                  read_json(path) if os.path.isfile(path) else {}))
    for r in rows:
        for key in ("infer_s_per_voxel", "train_s_per_iter", "peak_train_mem_mb"):
            for ref_key, ref_name in REFERENCES.items():
                ref = next((x for x in rows if x["model"] == ref_name), None)
                r[f"{key}_vs_{ref_key}"] = r[key] / ref[key] if ref and ref[key] else math.nan
    return rows


def between_models(out_root: str, dataset: str, profile: str, models: Sequence) -> List[tuple]:
    """[(model a, model b, paired a - b)] for every pair of models other than the references, in profile order:
    the comparisons the table's two reference columns do not answer (e.g. Distill DSM against Residual DSM)."""
    names = [m.label for m in models if m.label not in REFERENCES.values()]
    dice = {n: case_dice(load_runs(out_root, dataset, profile, n)) for n in names}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = paired_difference(dice[a], dice[b]) if dice[a] and dice[b] else None
            if d:
                pairs.append((a, b, d))
    return pairs


def per_class_over_runs(out_root: str, dataset: str, profile: str, models: Sequence) -> str:
    """The paper's way (its Tables 2 and 3): per class, the mean and sd over runs (folds) of each run's mean Dice of
    that class, as a markdown table; "" without runs."""
    lines = []
    for m in models:
        runs = load_runs(out_root, dataset, profile, m.label)
        if not runs:
            continue
        classes = sorted({c for r in runs for case in r["cases"].values() for c in case["dice"]})
        per_run = {c: [nanmean(case["dice"].get(c) for case in r["cases"].values()) for r in runs] for c in classes}
        if not lines:
            lines = [f"| model | runs | {' | '.join(classes)} |", "|" + "---|" * (2 + len(classes))]
        cells = [f"{statistics.mean(v):.4f} +- {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
                 for v in per_run.values()]
        lines.append(f"| {m.label} | {len(runs)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.3e}" if v and (abs(v) < 1e-2 or abs(v) > 1e5) else f"{v:.3f}"
    return str(v)


def ci_text(r: dict, key: str) -> str:
    if math.isnan(r[f"dice_vs_{key}"]) or not r[f"verdict_vs_{key}"]:
        return "-"
    return f"{r[f'dice_vs_{key}']:+.3f} {interval(r[f'dice_vs_{key}_lo'], r[f'dice_vs_{key}_hi'], '+.3f')} " \
           f"{r[f'verdict_vs_{key}']}"


def interval(lo: float, hi: float, spec: str = ".3f") -> str:
    return "[no CI]" if math.isnan(lo) or math.isnan(hi) else f"[{lo:{spec}}, {hi:{spec}}]"


def train_s_text(r: dict) -> str:
    own, total = r["train_s_mean"], r["train_s_with_start_mean"]
    if not r["train_s_runs"]:
        return "contended (all runs)"
    text = f"{own:.0f}"
    if r["fine_tune"]:
        clean = r["train_s_with_start_runs"]
        with_start = f"{total:.0f}" if clean else "n/a"
        if clean < r["train_s_runs"]:
            with_start += f"; {r['train_s_runs'] - clean} run(s) with a contended start left out"
        text += f" (with its start: {with_start})"
    left_out = r["runs"] - r["train_s_runs"]
    return text + (f" ({left_out} contended run(s) left out)" if left_out else "")


def write_tables(rows: List[dict], out_root: str, dataset: str, profile: str, header: str = "",
                 pairs: Sequence[tuple] = ()):
    out = os.path.join(out_root, "results")
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"{dataset}_{profile}")
    cols = ["model", "runs", "dice_mean", "dice_lo", "dice_hi", "dice_run_sd", "dice_vs_2d", "dice_vs_2d_lo",
            "dice_vs_2d_hi", "verdict_vs_2d", "dice_vs_3d", "dice_vs_3d_lo", "dice_vs_3d_hi", "verdict_vs_3d",
            "train_s_runs", "train_s_total", "train_s_mean", "train_s_with_start_runs", "train_s_with_start_mean",
            "wall_s_mean", "iterations"] + \
        sorted({k for r in rows for k in r if k.startswith("dice_") and k[5:] not in
                ("mean", "lo", "hi", "run_sd") and not k.startswith("dice_vs")}) + ["hd95_mean"] + \
        sorted({k for r in rows for k in r if k.startswith("hd95_") and k != "hd95_mean"}) + \
        ["params", "flops_per_voxel", "infer_s_per_voxel", "train_s_per_iter", "peak_train_mem_mb", "peak_rss_mb",
         "infer_s_per_voxel_vs_2d", "infer_s_per_voxel_vs_3d", "train_s_per_iter_vs_2d", "train_s_per_iter_vs_3d",
         "peak_train_mem_mb_vs_2d", "peak_train_mem_mb_vs_3d", "trainer", "configuration", "batch", "patch"]
    with open(stem + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([[r.get(c, "") for c in cols] for r in rows])
    with open(stem + ".md", "w") as f:
        f.write(f"# {dataset}: profile {profile}\n\nWritten by `python -m benchmarks benchmark` from the run files in "
                f"`runs/{dataset}/{profile}/`. {header}\n\n"
                f"Dice: mean over runs (independent trainings) and test cases of the mean foreground-class Dice. "
                f"Paired differences against nnU-Net 2d and 3d_fullres: mean [95% CI] and verdict at 95%, from a "
                f"{METHOD}. run sd: standard deviation of the runs' mean Dice. Train s: seconds in nnU-Net's "
                f"training loop (epoch timestamps), mean per run over the runs that had the machine to themselves "
                f"(a run with another training or test session at its start or end is contended: its seconds are "
                f"left out, and the cell says how many); a fine-tune's also with the training of the model it "
                f"started from.\n\n")
        if any(r["runs"] < 3 for r in rows):
            f.write("**Fewer than 3 runs for some models: their intervals cover test-case noise and the runs present, "
                    "not the run-to-run spread of training; read them as preliminary.**\n\n")
        f.write("| model | runs | Dice [95% CI] | run sd | vs 2d | vs 3d_fullres | iterations | train s | "
                "HD95 (mm) | params | inference s/voxel | train s/step (probe) | train MB held |\n")
        f.write("|" + "---|" * 13 + "\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['runs']} | {r['dice_mean']:.3f} {interval(r['dice_lo'], r['dice_hi'])} | "
                    f"{fmt(r['dice_run_sd'])} | {ci_text(r, '2d')} | {ci_text(r, '3d')} | {r['iterations']:.0f} | "
                    f"{train_s_text(r)} | {fmt(r['hd95_mean'])} | {fmt(r['params'])} | "
                    f"{fmt(r['infer_s_per_voxel'])} | {fmt(r['train_s_per_iter'])} | {fmt(r['peak_train_mem_mb'])} |\n")
        if pairs:
            f.write("\nBetween the other models, paired by run and case (same method):\n\n"
                    "| model a | model b | a - b [95% CI] | runs | verdict for a |\n|---|---|---|---|---|\n")
            for a, b, d in pairs:
                f.write(f"| {a} | {b} | {d.mean:+.3f} {interval(d.lo, d.hi, '+.3f')} | {d.runs} | {d.verdict} |\n")
        f.write("\nAll columns:\n\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |\n")
    return stem


def not_plotted(r: dict) -> str:
    return " (not plotted: no uncontended training seconds)" if math.isnan(r["train_s_with_start_mean"]) else ""


def plot_profile(rows: List[dict], path: str, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        a.errorbar(r["train_s_with_start_mean"], r["dice_mean"], yerr=[[r["dice_mean"] - r["dice_lo"]],
                                                                       [r["dice_hi"] - r["dice_mean"]]],
                   fmt="o", ms=7, capsize=4, color=colors[i % len(colors)],
                   label=f"{r['model']} ({r['runs']} runs)" + not_plotted(r))
    a.legend(fontsize=8, loc="lower right")
    a.margins(0.15)
    a.set_xlabel(TRAIN_S_AXIS)
    a.set_ylabel("mean Dice (95% CI)")
    a.set_title("accuracy against training cost")
    classes = sorted({k[5:] for r in rows for k in r if k.startswith("dice_") and k[5:] not in
                      ("mean", "lo", "hi", "run_sd") and not k.startswith("dice_vs")})
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        b.bar(np.arange(len(classes)) + i * width, [r.get(f"dice_{c}", math.nan) for c in classes], width,
              label=r["model"], color=colors[i % len(colors)])
    b.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    b.set_ylabel("Dice")
    b.set_ylim(0, 1.25)
    b.set_title("Dice per class")
    b.legend(fontsize=8, loc="upper left", ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tradeoff(rows_by_profile: Dict[str, List[dict]], path: str, title: str):
    """Dice (CI bars) against training seconds per run, one marker per profile, one colour per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v"
    names = list(dict.fromkeys(r["model"] for rows in rows_by_profile.values() for r in rows))
    for j, (profile, rows) in enumerate(rows_by_profile.items()):
        for r in rows:
            i = names.index(r["model"])
            ax.errorbar(r["train_s_with_start_mean"], r["dice_mean"],
                        yerr=[[r["dice_mean"] - r["dice_lo"]], [r["dice_hi"] - r["dice_mean"]]],
                        fmt=markers[j % len(markers)], ms=7, capsize=4, color=colors[i % len(colors)],
                        label=f"{r['model']}, {profile}" + not_plotted(r))
    ax.set_xlabel(TRAIN_S_AXIS)
    ax.set_ylabel("mean Dice (95% CI over runs and cases)")
    ax.set_title(title)
    ax.margins(0.15)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_study(study) -> List[dict]:
    """Write the tables and plots of `study` (benchmark.Study) from every run file present; return its rows."""
    rows = aggregate(study.out_root, study.name, study.profile, study.models)
    if not rows:
        say(f"no run files under {profile_folder(study.out_root, study.name, study.profile)} yet")
        return rows
    header = ""
    if study.budget_s and study.wall_clock:
        header = (f"Budget: {study.budget_s / 60:g} wall-clock minutes of training per model and run, counted by "
                  f"each trainer from its first epoch's start, validation, checkpoints and plots included "
                  f"(wall_s in the CSV).")
    elif study.budget_s:
        header = f"Budget: {study.budget_s / 60:g} training minutes per model and run."
    pairs = between_models(study.out_root, study.name, study.profile, study.models)
    stem = write_tables(rows, study.out_root, study.name, study.profile, header, pairs)
    if study.profile in PER_CLASS_PROFILES:
        with open(stem + ".md", "a") as f:
            f.write("\nPer class, the paper's way (its Tables 2 and 3): Dice mean +- sd over runs (folds) of each "
                    "run's mean over its cases:\n\n"
                    + per_class_over_runs(study.out_root, study.name, study.profile, study.models) + "\n")
    plot_profile(rows, stem + ".png", f"{study.name}, {study.profile}")
    by_profile = {p: aggregate(study.out_root, study.name, p,
                                      PROFILES[p]) for p in TRADEOFF.get(study.profile, ())}
    by_profile = {p: r for p, r in by_profile.items() if r}
    if by_profile:
        plot_tradeoff(by_profile, os.path.join(study.out_root, "results", f"{study.name}_tradeoff.png"),
                             f"{study.name}: accuracy against training time")
    for r in rows:
        say(f"{r['model']}: {r['runs']} run(s), Dice {r['dice_mean']:.3f} "
            f"{interval(r['dice_lo'], r['dice_hi'])}"
            f", vs 2d {ci_text(r, '2d')}, vs 3d {ci_text(r, '3d')}")
    say(f"wrote {stem}.md, .csv, .png")
    return rows
