"""Shared fixtures: a small synthetic dataset planned and preprocessed by nnU-Net's own commands."""
import contextlib
import io
import os
import subprocess
import sys
import traceback
from importlib.metadata import entry_points

import pytest

BIN = os.path.dirname(sys.executable)
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# nnU-Net reads this once, at import (nnunetv2.configuration): the commands run in this process (`run`) then export
# and evaluate with one worker, as nnunet_env's subprocesses do, instead of nnU-Net's default 8 on these 2 cores
os.environ["nnUNet_def_n_proc"] = "1"


def _pip_index_url() -> str:
    """The index `pip download` uses here: PIP_INDEX_URL, else pip's configured index-url, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].split()[0]
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    urls = [line.split("=", 1)[1].strip("'\"") for line in out.splitlines()
            if line.split("=", 1)[0].rsplit(".", 1)[-1] == "index-url"]
    return urls[-1] if urls else "https://pypi.org/simple"


def _apt_archive_urls() -> list:
    import glob
    import re
    text = ""
    for path in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*")]:
        try:
            text += open(path).read() + "\n"
        except OSError:
            pass
    return sorted(set(re.findall(r"^(?:deb\s+(?:\[[^]]*\]\s+)?|URIs:\s*)(https?://\S+)", text, re.M)))


def _answers(url: str, timeout: float):
    """None when the server at url answers a HEAD request (any HTTP status), else the error."""
    import urllib.error
    import urllib.request
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except Exception as e:  # offline: DNS failure, refused, timed out, proxy error
        return e
    return None


def registries_unreachable(timeout: float = 5.0):
    """None when pip's package index and one of apt's archives answer within `timeout` s, else why not."""
    url = _pip_index_url().rstrip("/") + "/pip/"
    error = _answers(url, timeout)
    if error is None:
        apt = [u.rstrip("/") + "/" for u in _apt_archive_urls()] or ["http://deb.debian.org/debian/"]
        for url in apt:  # some configured sources may be dead; one that answers is enough to try
            error = _answers(url, timeout)
            if error is None:
                return None
    return f"package registry unreachable ({url}: {error}); these tests download pip and apt packages"


def pytest_collection_modifyitems(config, items):
    """Tests marked `network` (setup.cfg) skip, with the reason, when the registries cannot be reached."""
    network = [item for item in items if item.get_closest_marker("network")]
    if network:
        reason = registries_unreachable()
        if reason:
            for item in network:
                item.add_marker(pytest.mark.skip(reason=reason))


def run(cmd, env, timeout=900, check=True, in_subprocess=False):
    """Run a console command (nnU-Net's or this package's) with `env` as its environment; return the completed
    process. In this process by default: the command's own entry point (its console_scripts entry) called with
    the command line as sys.argv and os.environ = env, stdout and stderr captured, an exception or SystemExit
    turned into the exit status a shell would see. That is the code the installed script runs, without starting
    an interpreter and importing torch and nnU-Net again (~6 s a command). `in_subprocess=True`, or a command
    that is no entry point, starts the installed script: the tests that prove the command path use it.
    `benchmarks ...` is the laboratory's `python -m benchmarks ...` (not installed: run from the repository)."""
    if cmd[0] == "benchmarks":
        if in_subprocess:
            return check_status(cmd, subprocess.run([sys.executable, "-m", *cmd], env=env, capture_output=True,
                                                    text=True, timeout=timeout, cwd=REPOSITORY), check)
        from benchmarks.__main__ import main
        return check_status(cmd, run_entry_point(main, ["python -m benchmarks", *cmd[1:]], env), check)
    script = os.path.basename(cmd[0])
    found = entry_points(group="console_scripts", name=script)
    if in_subprocess or not found:
        proc = subprocess.run([os.path.join(BIN, cmd[0]), *cmd[1:]], env=env, capture_output=True, text=True,
                              timeout=timeout)
    else:
        proc = run_entry_point(next(iter(found)).load(), [os.path.join(BIN, script), *cmd[1:]], env)
    return check_status(cmd, proc, check)


def check_status(cmd, proc, check: bool) -> subprocess.CompletedProcess:
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def run_entry_point(main, argv, env) -> subprocess.CompletedProcess:
    """main() as its console script calls it (`sys.exit(main())`), with argv and env; os.environ and sys.argv are
    restored afterwards."""
    saved_env, saved_argv = dict(os.environ), sys.argv
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    sys.argv = list(argv)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main()
            except SystemExit as e:
                status = e.code
            except Exception:
                traceback.print_exc()
                status = 1
            if isinstance(status, str):  # sys.exit("message"): printed to stderr, exit status 1
                print(status, file=sys.stderr)
                status = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
    return subprocess.CompletedProcess(argv, status or 0, out.getvalue(), err.getvalue())


def nnunet_env(root):
    """nnU-Net's folders under `root`, with the user's trainers and the benchmark's (the tests train short budgets)."""
    from benchmarks.nnunet_commands import nnunet_environment
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               nnUNet_n_proc_DA="1", nnUNet_def_n_proc="1", OMP_NUM_THREADS="2")
    return nnunet_environment(env)


def plan_and_preprocess(env, dataset_id, configurations, planners=("ExperimentPlanner",), processes=2):
    """What `nnUNetv2_plan_and_preprocess -d ID -c CONFIGURATIONS` (then `nnUNetv2_plan_experiment -pl` for
    further planners) does, through the same nnU-Net functions in this process: no interpreter start-ups, and
    `processes` workers for the fingerprint too (the command's default is 8)."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    from helpers import use_nnunet_folders
    with pytest.MonkeyPatch.context() as mp:
        use_nnunet_folders(mp, env)
        extract_fingerprints([dataset_id], num_processes=processes, verbose=False, show_progress_bar=False)
        for planner in planners:
            plan_experiments([dataset_id], planner)
        preprocess([dataset_id], configurations=configurations, num_processes=[processes], verbose=False,
                   show_progress_bar=False)


@pytest.fixture(scope="session")
def planned(tmp_path_factory):
    """(env, dataset id): Dataset901 written, planned (default and ResEnc M planners) and preprocessed."""
    from benchmarks.synthetic import write_dataset
    root = tmp_path_factory.mktemp("nnunet")
    env = nnunet_env(root)
    write_dataset(env["nnUNet_raw"], 901, n_train=10, n_test=3, shape=(16, 40, 40))
    plan_and_preprocess(env, 901, ["2d", "3d_fullres"], planners=["ExperimentPlanner", "nnUNetPlannerResEncM"])
    return env, 901


DS = "Dataset901_DepthContext"


def results(env, trainer, config="2d"):
    return os.path.join(env["nnUNet_results"], DS, f"{trainer}__nnUNetPlans__{config}")


def raw(env, sub):
    return os.path.join(env["nnUNet_raw"], DS, sub)


def predict(env, out, trainer, config="2d", extra=()):
    """nnUNetv2_predict without worker processes (-npp 0 -nps 0): each would import torch and nnU-Net again."""
    run(["nnUNetv2_predict", "-i", raw(env, "imagesTs"), "-o", out, "-d", "901", "-c", config, "-tr", trainer,
         "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0", *extra], env)


@pytest.fixture(scope="session")
def trained(planned, tmp_path_factory):
    """DistillDSMTrainer_demo trained on fold 0 with --npz, and its predictions of the test cases."""
    env, _ = planned
    run(["nnUNetv2_train", "901", "2d", "0", "-tr", "DistillDSMTrainer_demo", "-device", "cpu", "--npz"], env)
    out = str(tmp_path_factory.mktemp("pred_dsm"))
    predict(env, out, "DistillDSMTrainer_demo", extra=["--save_probabilities"])
    return env, out


@pytest.fixture(scope="session")
def stock_3d(planned):
    """Stock nnUNetTrainer_tiny trained on Dataset901 3d_fullres fold 0 with --npz, once for every test that needs
    one: (env, its model folder)."""
    env, _ = planned
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "nnUNetTrainer_tiny", "-device", "cpu", "--npz"], env)
    return env, results(env, "nnUNetTrainer_tiny", "3d_fullres")


@pytest.fixture(scope="session")
def stock_2d(planned):
    """Stock nnUNetTrainer_tiny trained on Dataset901 2d fold 0 with --npz: (env, its model folder)."""
    env, _ = planned
    run(["nnUNetv2_train", "901", "2d", "0", "-tr", "nnUNetTrainer_tiny", "-device", "cpu", "--npz"], env)
    return env, results(env, "nnUNetTrainer_tiny")
