"""Whole-stack prediction against nnU-Net's stock predictor at real size, side by side in one run (issue 45).

A generated volume of a BraTS case's size (2 modalities, 155 x 240 x 240 at 1 mm; a second one for the plans),
planned and preprocessed by nnU-Net for 2d; a DistillDSMTrainer model folder holding the trainer's initialised
network, written by nnU-Net's own `save_checkpoint` (a forward pass takes the same time whatever the weights);
the case predicted by `nnUNetv2_predict` and by `nnunet-distilldsm predict` (default chunk, and each --chunk
given), without TTA, one preprocessing and one export process each, the commands taking turns for --rounds
rounds. Per command: wall seconds (median over rounds) and its ratio to the stock predictor's, and the peak
resident memory of the command's process tree.

    python -m benchmarks.checks.predict_speed --workdir DIR [--rounds 1] [--size 240] [--depth 155] [--chunks 27]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import SimpleITK as sitk
import torch

from benchmarks.nnunet_commands import nnunet_environment, run_nnunet

DATASET_ID, NAME, TRAINER = 988, "PredictSpeed", "DistillDSMTrainer"


def write_case(folder: str, name: str, depth: int, size: int, rng, label_folder=None):
    """Two modalities of noise with a bright ball, and its label."""
    z, y, x = np.ogrid[:depth, :size, :size]
    ball = ((z - depth / 2) ** 2 + (y - size / 2) ** 2 + (x - size / 2) ** 2) < (size / 6) ** 2
    for m in range(2):
        img = sitk.GetImageFromArray((ball * 100 + rng.normal(0, 20, ball.shape)).astype(np.float32))
        sitk.WriteImage(img, os.path.join(folder, f"{name}_{m:04d}.nii.gz"))
    if label_folder:
        sitk.WriteImage(sitk.GetImageFromArray(ball.astype(np.uint8)), os.path.join(label_folder, f"{name}.nii.gz"))


def prepare(workdir: str, depth: int, size: int) -> dict:
    """The nnU-Net folders, the planned dataset and the model folder; returns the environment."""
    env = nnunet_environment(nnUNet_raw=os.path.join(workdir, "raw"), nnUNet_results=os.path.join(workdir, "res"),
                             nnUNet_preprocessed=os.path.join(workdir, "pre"))
    raw = os.path.join(env["nnUNet_raw"], f"Dataset{DATASET_ID}_{NAME}")
    if not os.path.isfile(os.path.join(raw, "dataset.json")):
        rng = np.random.default_rng(0)
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            os.makedirs(os.path.join(raw, sub), exist_ok=True)
        for i in range(2):
            write_case(os.path.join(raw, "imagesTr"), f"case_{i}", depth, size, rng, os.path.join(raw, "labelsTr"))
        write_case(os.path.join(raw, "imagesTs"), "test", depth, size, rng)
        with open(os.path.join(raw, "dataset.json"), "w") as f:
            json.dump({"channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "ball": 1},
                       "numTraining": 2, "file_ending": ".nii.gz"}, f)
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"], env, quiet=True)
    model = os.path.join(env["nnUNet_results"], f"Dataset{DATASET_ID}_{NAME}", f"{TRAINER}__nnUNetPlans__2d")
    if not os.path.isfile(os.path.join(model, "fold_0", "checkpoint_final.pth")):
        code = (f"import json, os, shutil, torch\n"
                f"from nnunet_distilldsm.trainers import {TRAINER}\n"
                f"pre = '{env['nnUNet_preprocessed']}/Dataset{DATASET_ID}_{NAME}'\n"
                f"plans = dict(json.load(open(pre + '/nnUNetPlans.json')), continue_training=False)\n"
                f"t = {TRAINER}(plans, '2d', 0,"
                f" json.load(open(pre + '/dataset.json')), torch.device('cpu'))\n"
                f"t.initialize()\n"
                f"os.makedirs(t.output_folder, exist_ok=True)\n"
                f"t.configure_rotation_dummyDA_mirroring_and_inital_patch_size()\n"
                f"json.dump(t.plans_manager.plans, open(t.output_folder_base + '/plans.json', 'w'))\n"
                f"shutil.copy(pre + '/dataset.json', t.output_folder_base)\n"
                f"shutil.copy(pre + '/dataset_fingerprint.json', t.output_folder_base)\n"
                f"t.save_checkpoint(t.output_folder + '/checkpoint_final.pth')\n"
                f"print('reach', t.network.reach, 'slab', t.configuration_manager.patch_size,"
                f" 'batch', t.configuration_manager.batch_size)\n")
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return env


def timed(cmd, env, stdout=subprocess.DEVNULL, preexec_fn=None) -> tuple:
    """(wall seconds, peak resident MiB of the process tree) of one command; stdout and preexec_fn as Popen's."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=None if stdout is subprocess.DEVNULL else stdout,
                            preexec_fn=preexec_fn)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return time.perf_counter() - t, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--size", type=int, default=240)
    p.add_argument("--depth", type=int, default=155)
    p.add_argument("--chunks", type=int, nargs="*", default=[], help="also predict whole-stack with these --chunk")
    a = p.parse_args()
    env = prepare(a.workdir, a.depth, a.size)
    bin_dir = os.path.dirname(sys.executable)
    inp = os.path.join(env["nnUNet_raw"], f"Dataset{DATASET_ID}_{NAME}", "imagesTs")
    common = ["-i", inp, "-d", str(DATASET_ID), "-c", "2d", "-tr", TRAINER, "-f", "0", "-device", "cpu",
              "--disable_tta", "-npp", "1", "-nps", "1"]
    commands = {"nnUNetv2_predict": [os.path.join(bin_dir, "nnUNetv2_predict"), *common],
                "nnunet-distilldsm predict": [os.path.join(bin_dir, "nnunet-distilldsm"), "predict", *common]}
    for c in a.chunks:
        commands[f"nnunet-distilldsm predict --chunk {c}"] = [*commands["nnunet-distilldsm predict"], "--chunk", str(c)]
    seconds, memory = {k: [] for k in commands}, {k: [] for k in commands}
    for r in range(a.rounds):
        for name, cmd in commands.items():
            out = os.path.join(a.workdir, "out", name.replace(" ", "_").replace("-", ""))
            shutil.rmtree(out, ignore_errors=True)
            s, mib = timed([*cmd, "-o", out], env)
            print(f"round {r + 1}: {name}: {s:.1f} s, {mib:.0f} MiB", flush=True)
            seconds[name].append(s)
            memory[name].append(mib)
    base = statistics.median(seconds["nnUNetv2_predict"])
    print(f"\n{a.depth} x {a.size} x {a.size}, 2 modalities, one case, {torch.get_num_threads()} threads, "
          f"{a.rounds} round(s)\n| command | wall s (median) | vs nnUNetv2_predict | peak MiB |\n|---|---|---|---|")
    for name in commands:
        med = statistics.median(seconds[name])
        print(f"| {name} | {med:.1f} | {med / base:.2f} | {max(memory[name]):.0f} |")


if __name__ == "__main__":
    main()
