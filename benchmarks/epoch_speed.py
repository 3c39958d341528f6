"""Seconds per epoch through `nnUNetv2_train`: what a user waits for, data loading and augmentation included.

For each slice size, the synthetic dataset is written with volumes of `depth` slices of that size,
planned and preprocessed by nnU-Net for the configurations the study needs, and each trainer trains
a few short epochs with nnU-Net's own data loader, augmentation workers, validation and (on CUDA)
AMP and torch.compile as nnU-Net decides (its final validation after the last epoch is skipped: no epoch
second depends on it). From nnU-Net's log: seconds per epoch after the first
(their mean), iterations per second, the first epoch's excess over them (compile and warm-up), and
on CUDA the peak GPU memory the short-run trainers log. The trainers run one after the other, in an
order that rotates with the size, on an otherwise idle machine.

Two studies (`--study`; every setting can be overridden):
- `cpu` (default): nnU-Net 2d, the default and one module per block at 48 and 128 slices, 2 epochs of
  25 iterations (`_calib` trainers).
- `gpu`: nnU-Net 2d, the default, one module per block, slices as channels and 3d_fullres on 24
  volumes of 64 x 320 x 320, 3 epochs of 25 iterations (`_timed` trainers), on cuda. `--budget tiny`
  with small sizes is its dry run on the CPU (the test suite runs one).

    python -m benchmarks epoch-speed --workdir DIR [--study cpu|gpu] [--sizes ...] [--depth D] [--n-train N]
        [--epochs E] [--budget calib|timed|tiny] [--device cpu|cuda] [--json PATH] [--md PATH]
"""
import argparse
import glob
import json
import os
import statistics
from typing import Dict, Optional, Sequence, Tuple

from benchmarks.budget_trainers import (
    EPOCHS_VARIABLE,
    FINAL_VALIDATION_VARIABLE,
    PEAK_GPU_MEMORY_LINE,
    trainer_name,
)
from benchmarks.nnunet_commands import is_preprocessed, run_nnunet
from benchmarks.synthetic import write_dataset
from benchmarks.training_records import training_record

DATASET_ID = 988  # any id: each size has an nnU-Net tree of its own
# label: (trainer class without its budget suffix, configuration)
CPU_TRAINERS = {"nnU-Net 2d": ("nnUNetTrainer", "2d"), "Distill DSM (default)": ("DistillDSMTrainer", "2d"),
                "Distill DSM, one module per block": ("DistillDSMTrainer_perBlock", "2d")}
GPU_TRAINERS = {**CPU_TRAINERS, "slices as channels (+-2)": ("SlicesAsChannelsTrainer", "2d"),
                "nnU-Net 3d_fullres": ("nnUNetTrainer", "3d_fullres")}
STUDIES = {"cpu": dict(trainers=CPU_TRAINERS, sizes=[48, 128], depth=20, n_train=12, budget="calib", epochs=2,
                       device="cpu"),
           "gpu": dict(trainers=GPU_TRAINERS, sizes=[320], depth=64, n_train=24, budget="timed", epochs=3,
                       device="cuda")}
BASELINES = ("nnU-Net 2d", "nnU-Net 3d_fullres")


def peak_gpu_mib(fold_folder: str) -> Optional[float]:
    """The peak the short-run trainer logged at the end of training (CUDA only), else None."""
    for log in sorted(glob.glob(os.path.join(fold_folder, "training_log_*.txt")), reverse=True):
        with open(log) as f:
            lines = [line for line in f if PEAK_GPU_MEMORY_LINE in line]
        if lines:
            return float(lines[-1].split(PEAK_GPU_MEMORY_LINE)[1].split()[0])
    return None


def epoch_seconds(workdir: str, size: int, trainers: Dict[str, Tuple[str, str]], device: str = "cpu",
                  depth: int = 20, rotate: int = 0, n_train: int = 12, budget: str = "calib",
                  epochs: int = 2) -> Dict[str, dict]:
    """{label: figures} for each trainer (class name without budget, configuration) on volumes of depth x size^2."""
    root = os.path.join(workdir, f"size{size}x{depth}")
    env = dict(os.environ, nnUNet_raw=os.path.join(root, "raw"), nnUNet_preprocessed=os.path.join(root, "pre"),
               nnUNet_results=os.path.join(root, "results"),
               **{EPOCHS_VARIABLE: str(epochs), FINAL_VALIDATION_VARIABLE: "0"})  # epoch seconds only
    name = f"EpochSpeed{size}"
    dataset = f"Dataset{DATASET_ID}_{name}"
    configs = sorted({config for _, config in trainers.values()})
    if not is_preprocessed(os.path.join(env["nnUNet_preprocessed"], dataset), configs):
        write_dataset(env["nnUNet_raw"], DATASET_ID, name, n_train=n_train, n_test=0, shape=(depth, size, size))
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", *configs, "-np", "2", "-npfp", "2"],
                   env, quiet=True)
    labels = list(trainers)
    out = {}
    for label in labels[rotate % len(labels):] + labels[:rotate % len(labels)]:
        base, config = trainers[label]
        trainer = trainer_name(base, budget)
        folder = os.path.join(env["nnUNet_results"], dataset, f"{trainer}__nnUNetPlans__{config}")
        if not os.path.isfile(os.path.join(folder, "fold_0", "checkpoint_final.pth")):
            run_nnunet(["nnUNetv2_train", str(DATASET_ID), config, "0", "-tr", trainer, "-device", device], env,
                       echo=True, quiet=True)
        record = training_record(folder, 0)
        seconds = record["epoch_s"]
        later = statistics.mean(seconds[1:]) if len(seconds) > 1 else seconds[0]
        with open(os.path.join(folder, "plans.json")) as f:
            trained = json.load(f)["configurations"][config]
        out[label] = {"trainer": trainer, "configuration": config, "epoch_s": later, "all_epoch_s": seconds,
                      "iterations_per_s": record["iterations"] / len(seconds) / later,
                      "first_epoch_excess_s": seconds[0] - later, "peak_gpu_mib": peak_gpu_mib(
                          os.path.join(folder, "fold_0")), "patch": trained["patch_size"],
                      "batch": trained["batch_size"]}
    for baseline in BASELINES:
        if baseline in out:
            key = "vs_2d" if baseline == "nnU-Net 2d" else "vs_3d_fullres"
            for v in out.values():
                v[f"epoch_s_{key}"] = v["epoch_s"] / out[baseline]["epoch_s"]
                if v["peak_gpu_mib"] and out[baseline]["peak_gpu_mib"]:
                    v[f"peak_gpu_mib_{key}"] = v["peak_gpu_mib"] / out[baseline]["peak_gpu_mib"]
    return {label: out[label] for label in labels}


def ratio(v: dict, key: str) -> str:
    return f"{v[key]:.3f}" if key in v else "-"


def table(results: Dict[int, Dict[str, dict]]) -> str:
    rows = ["| slices | trainer | configuration | batch x patch | s per epoch after the first | vs 2d | vs 3d_fullres "
            "| iterations/s | first epoch's excess s | peak GPU MiB | vs 2d | vs 3d_fullres |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, res in results.items():
        for label, v in res.items():
            peak = f"{v['peak_gpu_mib']:.0f}" if v["peak_gpu_mib"] else "-"
            rows.append(f"| {size} x {size} | {label} | {v['configuration']} | {v['batch']} x "
                        f"{'x'.join(map(str, v['patch']))} | {v['epoch_s']:.1f} | {ratio(v, 'epoch_s_vs_2d')} | "
                        f"{ratio(v, 'epoch_s_vs_3d_fullres')} | {v['iterations_per_s']:.2f} | "
                        f"{v['first_epoch_excess_s']:.1f} | {peak} | {ratio(v, 'peak_gpu_mib_vs_2d')} | "
                        f"{ratio(v, 'peak_gpu_mib_vs_3d_fullres')} |")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> Dict[int, Dict[str, dict]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks epoch-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="data, plans and trainings go here (reused when run again)")
    p.add_argument("--study", choices=sorted(STUDIES), default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", help="slice sizes (cpu: 48 128; gpu: 320)")
    p.add_argument("--depth", type=int, help="slices per volume (cpu: 20; gpu: 64)")
    p.add_argument("--n-train", type=int, help="training volumes (cpu: 12; gpu: 24)")
    p.add_argument("--epochs", type=int, help="epochs with --budget timed (gpu: 3)")
    p.add_argument("--budget", choices=("calib", "timed", "tiny"), help="short-run budget (cpu: calib, 2 x 25; "
                   "gpu: timed, --epochs x 25; tiny, 2 x 4, is the dry run)")
    p.add_argument("--device", help="cpu or cuda (cpu: cpu; gpu: cuda)")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--md", help="write the table to this file")
    a = p.parse_args(argv)
    study = dict(STUDIES[a.study])
    study.update({k: v for k, v in (("sizes", a.sizes), ("depth", a.depth), ("n_train", a.n_train),
                                    ("epochs", a.epochs), ("budget", a.budget), ("device", a.device)) if v is not None})
    results = {size: epoch_seconds(a.workdir, size, study["trainers"], study["device"], study["depth"], i,
                                   study["n_train"], study["budget"], study["epochs"])
               for i, size in enumerate(study["sizes"])}
    text = table(results)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"settings": {k: v for k, v in study.items() if k != "trainers"}, "results": results}, f,
                      indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")
    return results


if __name__ == "__main__":
    main()
