"""Seconds per batch of nnU-Net's training data loader alone, each trainer at its planned batch (issue 45).

On a GPU the network step is fast, and an epoch's seconds can come from nnU-Net's augmentation, which runs on the
CPU. This times the loaders the trainers themselves build (`get_dataloaders`: nnU-Net's data loader and
augmentation pipeline, with the slab trainers' sampling and in-plane blur), with no network step: nnU-Net 2d, the
default, one module per block, slices as channels and nnU-Net 3d_fullres, each at the batch and patch of the plans
it trains with, on one preprocessed dataset (nnUNetPlans, 2d and 3d_fullres).

- single process (nnUNet_n_proc_DA=0): the trainers take turns batch by batch, --batches rounds;
- with --workers augmentation workers (nnU-Net's NonDetMultiThreadedAugmenter): each trainer alone in turn (order
  rotated each round, --rounds rounds), its pool warmed up by 5 batches, then --batches batches timed.

Per trainer: median seconds per batch, seconds per voxel of the batch (slabs x slices x H x W, or 2d batch x H x W)
and that per-voxel figure's ratio to nnU-Net 2d's.

    python -m benchmarks data-path -d DATASET [--batches 20] [--rounds 3] [--workers 2] [--json PATH]
    python -m benchmarks data-path --generate 256 --workdir DIR ...  (8 generated volumes of 40 slices of
        256 x 256 at 0.8 x 0.8 x 2.5 mm, planned and preprocessed by nnU-Net in DIR; any slice size)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.nnunet_commands import is_preprocessed, nnunet_environment, run_nnunet

TRAINERS = {"nnU-Net 2d": ("nnUNetTrainer", "2d"), "Distill DSM (default)": ("DistillDSMTrainer", "2d"),
            "Distill DSM, one module per block": ("DistillDSMTrainer_perBlock", "2d"),
            "slices as channels (+-2)": ("SlicesAsChannelsTrainer", "2d"),
            "nnU-Net 3d_fullres": ("nnUNetTrainer", "3d_fullres")}
BASELINE = "nnU-Net 2d"
GENERATED_ID = 987


def trainer_loaders(dataset: str, label: str, workers: int):
    """(training loader, validation loader) as the trainer's get_dataloaders builds them, with `workers`
    augmentation workers (0: in this process)."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args
    os.environ["nnUNet_n_proc_DA"] = str(workers)
    trainer_name, config = TRAINERS[label]
    trainer = get_trainer_from_args(dataset, config, 0, trainer_name, "nnUNetPlans", device=torch.device("cpu"))
    trainer.initialize()
    return trainer.get_dataloaders()


def voxels(batch: dict) -> int:
    """Voxels of a batch per channel: (B, C, [D,] H, W) -> B x [D x] H x W."""
    return batch["data"][:, 0].numel()


def timed_batches(loader, n: int) -> tuple:
    """(seconds per batch over n batches, voxels per batch)."""
    t = time.perf_counter()
    for _ in range(n):
        batch = next(loader)
    return (time.perf_counter() - t) / n, voxels(batch)


def measure(dataset: str, batches: int, rounds: int, workers: int) -> dict:
    """{mode: {label: {"s_per_batch": [...], "voxels": v}}} for mode "single process" and "N workers"."""
    results = {"single process": {k: {"s_per_batch": []} for k in TRAINERS}}
    single = {label: trainer_loaders(dataset, label, 0) for label in TRAINERS}
    for _ in range(batches):
        for label, (train, _) in single.items():
            s, v = timed_batches(train, 1)
            results["single process"][label]["s_per_batch"].append(s)
            results["single process"][label]["voxels"] = v
    if workers:
        mode = f"{workers} workers"
        results[mode] = {k: {"s_per_batch": []} for k in TRAINERS}
        labels = list(TRAINERS)
        for r in range(rounds):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                train, val = trainer_loaders(dataset, label, workers)
                timed_batches(train, 5)
                s, v = timed_batches(train, batches)
                for loader in (train, val):
                    loader._finish()
                results[mode][label]["s_per_batch"].append(s)
                results[mode][label]["voxels"] = v
    for mode in results.values():
        base = statistics.median(mode[BASELINE]["s_per_batch"]) / mode[BASELINE]["voxels"]
        for v in mode.values():
            v["median_s_per_batch"] = statistics.median(v["s_per_batch"])
            v["s_per_voxel"] = v["median_s_per_batch"] / v["voxels"]
            v["per_voxel_vs_2d"] = v["s_per_voxel"] / base
    return results


def generate(workdir: str, size: int) -> dict:
    """nnU-Net folders in workdir with the generated dataset planned and preprocessed; returns the environment."""
    from benchmarks.synthetic import write_dataset
    env = nnunet_environment(nnUNet_raw=os.path.join(workdir, "raw"), nnUNet_preprocessed=os.path.join(workdir, "pre"),
                             nnUNet_results=os.path.join(workdir, "res"))
    name = f"DataPath{size}"
    if not is_preprocessed(os.path.join(env["nnUNet_preprocessed"], f"Dataset{GENERATED_ID}_{name}"),
                           ["2d", "3d_fullres"]):
        write_dataset(env["nnUNet_raw"], GENERATED_ID, name, n_train=8, n_test=0, shape=(40, size, size),
                      spacing=(2.5, 0.8, 0.8))
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(GENERATED_ID), "-c", "2d", "3d_fullres", "-np", "2"],
                   env, quiet=True)
    return env


def table(results: dict) -> str:
    rows = ["| loader | trainer | batch (voxels) | s per batch (median) | s per voxel | per voxel vs 2d |",
            "|---|---|---|---|---|---|"]
    for mode, by_trainer in results.items():
        for label, v in by_trainer.items():
            rows.append(f"| {mode} | {label} | {v['voxels']:,} | {v['median_s_per_batch']:.3f} | "
                        f"{v['s_per_voxel']:.2e} | {v['per_voxel_vs_2d']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks data-path", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset", help="a dataset preprocessed for 2d and 3d_fullres (nnUNetPlans)")
    p.add_argument("--generate", type=int, metavar="SIZE", help="generate, plan and preprocess SIZE x SIZE slices")
    p.add_argument("--workdir", help="with --generate: where the nnU-Net folders go (kept for the next run)")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="augmentation workers (0: single process only)")
    p.add_argument("--json")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)  # the measuring subprocess
    a = p.parse_args(argv)
    if a.inner:
        print(json.dumps(measure(a.dataset, a.batches, a.rounds, a.workers)))
        return
    if bool(a.dataset) == bool(a.generate):
        p.error("give -d DATASET or --generate SIZE")
    if a.generate:
        if not a.workdir:
            p.error("--generate needs --workdir")
        env, dataset = generate(a.workdir, a.generate), str(GENERATED_ID)
    else:
        env, dataset = nnunet_environment(), a.dataset
    with tempfile.TemporaryDirectory() as scratch:
        # the trainers write their logs into nnUNet_results: a scratch folder, not the user's models
        env = dict(env, nnUNet_results=scratch)
        done = subprocess.run([sys.executable, "-m", "benchmarks.data_path", "--inner", "-d", dataset, "--batches",
                               str(a.batches), "--rounds", str(a.rounds), "--workers", str(a.workers)],
                              env=env, check=True, stdout=subprocess.PIPE, text=True)
    results = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"dataset {dataset}, {a.batches} batches, {a.rounds} rounds with workers\n{table(results)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"dataset": dataset, "batches": a.batches, "rounds": a.rounds, "workers": a.workers,
                       "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
