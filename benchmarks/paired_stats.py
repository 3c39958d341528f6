"""Paired Dice differences between two models, with a confidence interval valid for few runs, and a verdict.

Runs are independent trainings (a fold and a seed); cases are the test cases each run predicts. Both are
samples: another training or another test set would give other numbers, and a study has few runs (often 3).

When every run predicts the same cases (imagesTs), the differences form a runs x cases table whose mean
varies with the runs drawn and with the cases drawn. Its variance is estimated from the table's two margins,
s_runs^2 / R + s_cases^2 / C (the spread of the run means and of the case means; this counts the residual
twice, so it errs wide), and the interval is Student's t with Welch-Satterthwaite degrees of freedom: about
R - 1 when runs disagree, about C - 1 when only cases do. With 3 runs that disagree, t has 2 degrees of
freedom (4.30 standard errors), which is what 3 runs can support; a bootstrap over 3 runs can draw only 10
distinct sets of them and is too narrow. When runs predict different cases (each fold its own validation
cases), the runs' mean differences get a t-interval with R - 1 degrees of freedom. One run: a t-interval
over its cases, which says nothing about another training. Fewer than MIN_SAMPLES values on the axis that
counts give no interval (NaN) and the verdict "undecided". tests/test_paired_stats.py checks by simulation
that the intervals cover the true difference at realistic run and case spreads.
"""
from typing import Dict, NamedTuple, Optional

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_SAMPLES = 3
METHOD = (f"{CONFIDENCE:.0%} t-interval over runs and test cases, paired by run and case: variance from the "
          f"spread of run means and of case means, Welch-Satterthwaite degrees of freedom (2 when 3 runs "
          f"disagree)")


class PairedDifference(NamedTuple):
    mean: float
    lo: float
    hi: float
    runs: int
    cases: int

    @property
    def verdict(self) -> str:
        if np.isnan(self.lo) or np.isnan(self.hi):
            return f"undecided (fewer than {MIN_SAMPLES} samples)"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "not distinguishable"


def t_interval(mean: float, variance: float, dof: float):
    half = stats.t.ppf((1 + CONFIDENCE) / 2, dof) * np.sqrt(variance) if variance > 0 else 0.0
    return mean - half, mean + half


def crossed_interval(table: np.ndarray):
    """(lo, hi) for the mean of a runs x cases table (R, C >= 2), runs and cases both random."""
    runs, cases = table.shape
    run_part = table.mean(axis=1).var(ddof=1) / runs
    case_part = table.mean(axis=0).var(ddof=1) / cases
    variance = run_part + case_part
    if variance == 0:
        return float(table.mean()), float(table.mean())
    dof = variance ** 2 / (run_part ** 2 / (runs - 1) + case_part ** 2 / (cases - 1))
    if run_part >= case_part:
        dof = runs - 1
    return t_interval(float(table.mean()), variance, dof)


def one_sample_interval(values: np.ndarray):
    return t_interval(float(values.mean()), values.var(ddof=1) / len(values), len(values) - 1)


def paired_difference(model: Dict[str, Dict[str, float]], reference: Dict[str, Dict[str, float]]
                      ) -> Optional[PairedDifference]:
    """model, reference: {run: {case: Dice}}. Mean of model - reference over shared runs and cases, with its CI.

    None when the two share no run. Cases with a NaN Dice in either are left out of that run.
    """
    runs = sorted(set(model) & set(reference))
    # cases in sorted order: a sum over a set's order would change with Python's hash seed in the last bits
    diffs = {r: {c: model[r][c] - reference[r][c] for c in sorted(set(model[r]) & set(reference[r]))
                 if np.isfinite(model[r][c] - reference[r][c])} for r in runs}
    runs = [r for r in runs if diffs[r]]
    if not runs:
        return None
    case_sets = {frozenset(diffs[r]) for r in runs}
    if len(case_sets) == 1:  # crossed: every run predicted the same cases
        cases = sorted(next(iter(case_sets)))
        table = np.array([[diffs[r][c] for c in cases] for r in runs])
        mean = float(table.mean())
        if len(runs) == 1 or len(cases) == 1:  # one axis varies
            if table.size < MIN_SAMPLES:
                return PairedDifference(mean, np.nan, np.nan, len(runs), len(cases))
            lo, hi = one_sample_interval(table.ravel())
        else:
            lo, hi = crossed_interval(table)
        return PairedDifference(mean, float(lo), float(hi), len(runs), len(cases))
    per_run = np.array([np.mean(list(diffs[r].values())) for r in runs])  # nested: each run its own cases
    n_cases = sum(len(d) for d in diffs.values())
    if len(per_run) < MIN_SAMPLES:
        return PairedDifference(float(per_run.mean()), np.nan, np.nan, len(runs), n_cases)
    lo, hi = one_sample_interval(per_run)
    return PairedDifference(float(per_run.mean()), float(lo), float(hi), len(runs), n_cases)
