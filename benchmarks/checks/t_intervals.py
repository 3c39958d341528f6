"""Three-run verdicts: the tables' bootstrap beside a t-interval over the runs (docs/results.md).

The t-interval averages each run's paired case differences, then takes Student's t with df = runs - 1, so
it widens with the spread between runs, which a bootstrap over 3 runs cannot draw. Run from the repository
root: python benchmarks/checks/t_intervals.py
"""
import numpy as np
from scipy import stats

from nnunet_distilldsm.benchmarks.paired_stats import paired_difference
from nnunet_distilldsm.benchmarks.run_store import case_dice, load_runs

BALLS, ENDS = "Dataset901_DepthContext", "Dataset903_DepthEnds"
DEFAULT, PER_CONV, PER_BLOCK = "Distill DSM", "Distill DSM, a module after every conv", "Distill DSM per block"
TWO_D, THREE_D, SAC = "nnU-Net 2d", "nnU-Net 3d_fullres", "nnU-Net 2d, slices as channels +-2"
MODULE_RECIPE = ("module-recipe", "equal-wallclock-module-recipe")
COMPARISONS = [  # (dataset, profile, model a, model b): a - b
    *[(BALLS, p, DEFAULT, b) for p in ("cpu-small", "equal-wallclock")
      for b in (TWO_D, THREE_D, SAC, PER_BLOCK, "Residual DSM")],
    (BALLS, "equal-wallclock", "Residual DSM", TWO_D), (BALLS, "equal-wallclock", PER_BLOCK, "Residual DSM"),
    *[(BALLS, p, PER_CONV, b) for p in MODULE_RECIPE for b in (THREE_D, PER_BLOCK)],
    *[(BALLS, p, "Distill DSM per block, alpha 1", PER_BLOCK) for p in MODULE_RECIPE],
    *[(ENDS, p, PER_CONV, b) for p in MODULE_RECIPE for b in (TWO_D, THREE_D, PER_BLOCK)],
]


def t_interval(a: dict, b: dict, confidence: float = 0.95):
    """(mean, lo, hi, runs) of the runs' mean paired differences a - b."""
    runs = sorted(set(a) & set(b))
    d = np.array([np.nanmean([a[r][c] - b[r][c] for c in a[r] if c in b[r]]) for r in runs])
    half = stats.t.ppf((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half, len(d)


def verdict(lo: float, hi: float) -> str:
    return "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"


def main(root: str = "benchmarks"):
    print("| dataset | profile | a - b | mean | bootstrap | t-interval | wider of the two |")
    print("|---|---|---|---|---|---|---|")
    for dataset, profile, a_name, b_name in COMPARISONS:
        a, b = (case_dice(load_runs(root, dataset, profile, m)) for m in (a_name, b_name))
        mean, lo, hi, runs = t_interval(a, b)
        boot = paired_difference(a, b)
        wide = (lo, hi) if hi - lo > boot.hi - boot.lo else (boot.lo, boot.hi)
        print(f"| {dataset} | {profile} | {a_name} - {b_name} | {mean:+.3f} | [{boot.lo:+.3f}, {boot.hi:+.3f}] "
              f"{boot.verdict} | [{lo:+.3f}, {hi:+.3f}] {verdict(lo, hi)} | {verdict(*wide)} ({runs} runs) |")


if __name__ == "__main__":
    main()
