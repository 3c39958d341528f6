"""The demo: nnU-Net's own commands on the embedded synthetic dataset, start to finish.

write dataset -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train ... -tr DistillDSMTrainer_demo
-> nnUNetv2_predict -> nnUNetv2_evaluate_folder -> Dice per class.
"""
import json
import os
import subprocess
import sys
import time

from nnunet_distilldsm.synthetic import LABELS, write_dataset

DATASET_ID, DATASET = 901, "Dataset901_DepthContext"


def nnunet_environment(workdir: str) -> dict:
    """os.environ plus nnU-Net's folders under `workdir` and this plugin's trainer folder."""
    from nnunet_distilldsm.cli import trainer_dir
    env = dict(os.environ)
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        env[var] = os.path.join(workdir, sub)
        os.makedirs(env[var], exist_ok=True)
    env["nnUNet_extTrainer"] = trainer_dir()
    env.setdefault("nnUNet_n_proc_DA", str(os.cpu_count() or 1))
    return env


def nnunet(cmd, env):
    """Run one nnU-Net console command of this environment, echoing it; fail loudly."""
    exe = os.path.join(os.path.dirname(sys.executable), cmd[0])
    print(f"\n$ {' '.join(cmd)}", flush=True)
    t = time.time()
    subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], env=env, check=True)
    print(f"[{cmd[0]} took {time.time() - t:.0f} s]", flush=True)


def run_demo(workdir: str = "demo_work", trainer: str = "DistillDSMTrainer_demo", device: str = "cpu") -> dict:
    workdir = os.path.abspath(workdir)
    env = nnunet_environment(workdir)
    raw = os.path.join(env["nnUNet_raw"], DATASET)
    if not os.path.isfile(os.path.join(raw, "dataset.json")):
        write_dataset(env["nnUNet_raw"], DATASET_ID)
    nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "2"], env)
    nnunet(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", device], env)
    pred = os.path.join(workdir, "predictions", trainer)
    nnunet(["nnUNetv2_predict", "-i", os.path.join(raw, "imagesTs"), "-o", pred, "-d", str(DATASET_ID), "-c", "2d",
            "-tr", trainer, "-f", "0", "-device", device], env)
    model = os.path.join(env["nnUNet_results"], DATASET, f"{trainer}__nnUNetPlans__2d")
    nnunet(["nnUNetv2_evaluate_folder", os.path.join(raw, "labelsTs"), pred, "-djfile",
            os.path.join(model, "dataset.json"), "-pfile", os.path.join(model, "plans.json")], env)
    summary = json.load(open(os.path.join(pred, "summary.json")))
    names = {str(v): k for k, v in LABELS.items()}
    dice = {names[c]: m["Dice"] for c, m in summary["mean"].items()}
    print(f"\nDice on {DATASET}'s test cases ({trainer}): " + ", ".join(f"{k} {v:.3f}" for k, v in dice.items())
          + f"; mean {summary['foreground_mean']['Dice']:.3f}")
    return dice
