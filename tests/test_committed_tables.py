"""`benchmark --no-train` rebuilds the committed tables from the committed run files, number for number: the
benchmark's models (recipe and budget) still name the runs they named when the tables were written."""
import os
import shutil

import pytest

from conftest import run

pytestmark = pytest.mark.slow  # trains, predicts or times networks (setup.cfg)

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "results")
DATASET = "Dataset901_DepthContext"


@pytest.mark.parametrize("profile,extra", [("cpu-small", []), ("equal-time", ["--train-minutes", "6"]),
                                           ("equal-wallclock", ["--train-minutes", "6"])])
def test_no_train_reproduces_the_committed_table(planned, tmp_path, profile, extra):
    env, _ = planned
    runs = os.path.join("results", "runs", DATASET, profile)
    shutil.copytree(os.path.join(RESULTS, "runs", DATASET, profile), tmp_path / runs)
    proc = run(["benchmarks", "benchmark", "-d", "901", "--profile", profile, "--no-train", "-o", str(tmp_path),
                *extra], env)
    assert ": train " not in proc.stdout and ": predict " not in proc.stdout  # re-aggregated, nothing trained
    for ending in (".md", ".csv"):
        written = (tmp_path / "results" / f"{DATASET}_{profile}{ending}").read_text()
        assert written == open(os.path.join(RESULTS, f"{DATASET}_{profile}{ending}")).read(), ending
