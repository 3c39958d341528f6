"""Run nnU-Net's console commands of this Python environment, with this plugin's trainers visible."""
import os
import subprocess
import sys
import time
from typing import List, Optional

import benchmarks
from nnunet_distilldsm import trainer_dir


def nnunet_environment(base: Optional[dict] = None, **overrides: str) -> dict:
    """`base` (default os.environ) with the plugin's trainer folders added to nnUNet_extTrainer, after any
    folders already there: the user's trainers, then the benchmark's budgets and ablations; and this repository
    on PYTHONPATH, so that the commands it starts import the benchmark's trainers (not installed with the plugin)."""
    env = dict(os.environ if base is None else base, **overrides)
    folders = [f for f in env.get("nnUNet_extTrainer", "").split(os.pathsep) if f]
    folders += [f for f in (trainer_dir(), benchmarks.trainer_dir()) if f not in folders]
    env["nnUNet_extTrainer"] = os.pathsep.join(folders)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths + [benchmarks.REPOSITORY] * (benchmarks.REPOSITORY not in paths))
    return env


def is_preprocessed(preprocessed_dataset: str, configurations, plans: str = "nnUNetPlans") -> bool:
    """Whether nnU-Net already wrote the plans `plans` and the data of every configuration in
    `preprocessed_dataset` (nnUNet_preprocessed/DatasetXXX_Name): a second run would only repeat it."""
    return os.path.isfile(os.path.join(preprocessed_dataset, f"{plans}.json")) and all(
        os.path.isdir(os.path.join(preprocessed_dataset, f"{plans}_{c}")) for c in configurations)


def run_nnunet(cmd: List[str], env: Optional[dict] = None, echo: bool = False, quiet: bool = False):
    """Run one nnU-Net command (e.g. ["nnUNetv2_train", ...]); raise CalledProcessError if it fails.

    quiet: drop the command's standard output (its errors still show)."""
    exe = os.path.join(os.path.dirname(sys.executable), cmd[0])
    if echo:
        print(f"\n$ {' '.join(cmd)}", flush=True)
    t = time.time()
    subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], env=nnunet_environment(env), check=True,
                   stdout=subprocess.DEVNULL if quiet else None)
    if echo:
        print(f"[{cmd[0]} took {time.time() - t:.0f} s]", flush=True)
