"""Seconds per epoch through `nnUNetv2_train`: what a user waits for, data loading and augmentation included.

For each slice size, the synthetic dataset is written with slices of that size, planned and
preprocessed for 2d by nnU-Net, and each trainer trains 2 epochs of 25 iterations (its `_calib`
budget) with nnU-Net's own data loader, augmentation workers and validation. The second epoch's
seconds, from nnU-Net's log in the checkpoint, are the figure; the trainers run one after the
other, in an order that rotates with the size, on an otherwise idle machine.

    nnunet-distilldsm epoch-speed --workdir DIR [--sizes 48 128] [--device cpu] [--json PATH]
"""
import argparse
import json
import os
from typing import Dict, List, Optional, Sequence

from nnunet_distilldsm.benchmarks.benchmark import training_record
from nnunet_distilldsm.nnunet_commands import run_nnunet
from nnunet_distilldsm.synthetic import write_dataset

TRAINERS = {"nnU-Net 2d": "nnUNetTrainer_calib", "Distill DSM (default)": "DistillDSMTrainer_calib",
            "Distill DSM, one module per block": "DistillDSMTrainer_perBlock_calib"}
DATASET_ID = 988  # any id: each size has an nnU-Net tree of its own


def epoch_seconds(workdir: str, size: int, trainers: Dict[str, str], device: str = "cpu", depth: int = 20,
                  rotate: int = 0, n_train: int = 12) -> Dict[str, dict]:
    """{label: {"epoch_s": second epoch's seconds, "all_epoch_s": [...], "patch": ..., "batch": ...}}."""
    root = os.path.join(workdir, f"size{size}")
    env = dict(os.environ, nnUNet_raw=os.path.join(root, "raw"), nnUNet_preprocessed=os.path.join(root, "pre"),
               nnUNet_results=os.path.join(root, "results"))
    name = f"EpochSpeed{size}"
    dataset = f"Dataset{DATASET_ID}_{name}"
    plans_file = os.path.join(env["nnUNet_preprocessed"], dataset, "nnUNetPlans.json")
    if not os.path.isdir(os.path.join(env["nnUNet_preprocessed"], dataset, "nnUNetPlans_2d")):
        write_dataset(env["nnUNet_raw"], DATASET_ID, name, n_train=n_train, n_test=0, shape=(depth, size, size))
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "2"], env, quiet=True)
    with open(plans_file) as f:
        planned = json.load(f)["configurations"]["2d"]
    labels = list(trainers)
    order = labels[rotate % len(labels):] + labels[:rotate % len(labels)]
    out = {}
    for label in order:
        trainer = trainers[label]
        folder = os.path.join(env["nnUNet_results"], dataset, f"{trainer}__nnUNetPlans__2d")
        if not os.path.isfile(os.path.join(folder, "fold_0", "checkpoint_final.pth")):
            run_nnunet(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", device], env,
                       echo=True, quiet=True)
        record = training_record(folder, 0)
        with open(os.path.join(folder, "plans.json")) as f:
            trained = json.load(f)["configurations"]["2d"]
        out[label] = {"trainer": trainer, "epoch_s": record["epoch_s"][-1], "all_epoch_s": record["epoch_s"],
                      "patch": trained["patch_size"], "batch": trained["batch_size"]}
    base = out[labels[0]]["epoch_s"]
    for v in out.values():
        v["ratio_to_2d"] = v["epoch_s"] / base
    out[labels[0]]["planned_2d_patch"], out[labels[0]]["planned_2d_batch"] = planned["patch_size"], planned["batch_size"]
    return {label: out[label] for label in labels}


def table(results: Dict[int, Dict[str, dict]]) -> str:
    rows = ["| slices | trainer | batch x patch | s per epoch (2nd of 2, 25 iterations) | vs nnU-Net 2d |",
            "|---|---|---|---|---|"]
    for size, res in results.items():
        for label, v in res.items():
            rows.append(f"| {size} x {size} | {label} | {v['batch']} x {'x'.join(map(str, v['patch']))} | "
                        f"{v['epoch_s']:.1f} | {v['ratio_to_2d']:.3f} |")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> Dict[int, Dict[str, dict]]:
    p = argparse.ArgumentParser(prog="nnunet-distilldsm epoch-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="data, plans and trainings go here (reused when run again)")
    p.add_argument("--sizes", type=int, nargs="+", default=[48, 128],
                   help="slice sizes (default 48, the synthetic benchmark's, and 128)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the results to this file")
    a = p.parse_args(argv)
    sizes: List[int] = a.sizes
    results = {size: epoch_seconds(a.workdir, size, TRAINERS, a.device, rotate=i) for i, size in enumerate(sizes)}
    print(table(results))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
