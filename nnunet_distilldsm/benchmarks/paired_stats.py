"""Paired Dice differences between two models, with a bootstrap confidence interval and a verdict.

Runs are independent trainings (a fold and a seed); cases are the test cases each run predicts.
Both are samples: another training or another test set would give other numbers. When every
run predicts the same cases (imagesTs), the differences form a runs x cases table and the
bootstrap resamples runs and cases independently (a crossed bootstrap: scipy.stats.bootstrap
with two unpaired samples, the run indices and the case indices). When runs predict different
cases (each fold its own validation cases), it resamples runs and averages each run's cases.
Fewer than MIN_SAMPLES values on the only axis resampled give no interval (NaN) and the verdict
"undecided": a bootstrap of one or two values would only return them as its bounds.
"""
from typing import Dict, NamedTuple, Optional

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
RESAMPLES = 10_000
MIN_SAMPLES = 3
METHOD = (f"{CONFIDENCE:.0%} percentile bootstrap (scipy.stats.bootstrap, {RESAMPLES:,} resamples) over runs "
          f"and test cases, paired by run and case")


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


def paired_difference(model: Dict[str, Dict[str, float]], reference: Dict[str, Dict[str, float]],
                      seed: int = 0) -> Optional[PairedDifference]:
    """model, reference: {run: {case: Dice}}. Mean of model - reference over shared runs and cases, with its CI.

    None when the two share no run. Cases with a NaN Dice in either are left out of that run.
    """
    runs = sorted(set(model) & set(reference))
    diffs = {r: {c: model[r][c] - reference[r][c] for c in set(model[r]) & set(reference[r])
                 if np.isfinite(model[r][c] - reference[r][c])} for r in runs}
    runs = [r for r in runs if diffs[r]]
    if not runs:
        return None
    case_sets = {frozenset(diffs[r]) for r in runs}
    rng = np.random.default_rng(seed)
    if len(case_sets) == 1:  # crossed: every run predicted the same cases
        cases = sorted(next(iter(case_sets)))
        table = np.array([[diffs[r][c] for c in cases] for r in runs])
        mean = float(table.mean())
        if len(runs) == 1 or len(cases) == 1:  # one axis to resample
            if table.size < MIN_SAMPLES:
                return PairedDifference(mean, np.nan, np.nan, len(runs), len(cases))
            ci = bootstrap((table.ravel(),), np.mean, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                           method="percentile", random_state=rng).confidence_interval
        else:
            ci = bootstrap((np.arange(len(runs)), np.arange(len(cases))),
                           lambda ri, ci_: table[np.ix_(ri, ci_)].mean(), paired=False, vectorized=False,
                           n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                           random_state=rng).confidence_interval
        return PairedDifference(mean, float(ci.low), float(ci.high), len(runs), len(cases))
    per_run = np.array([np.mean(list(diffs[r].values())) for r in runs])  # nested: each run its own cases
    mean = float(per_run.mean())
    if len(per_run) < MIN_SAMPLES:
        return PairedDifference(mean, np.nan, np.nan, len(runs), sum(len(d) for d in diffs.values()))
    ci = bootstrap((per_run,), np.mean, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                   random_state=rng).confidence_interval
    return PairedDifference(mean, float(ci.low), float(ci.high), len(runs), sum(len(d) for d in diffs.values()))
