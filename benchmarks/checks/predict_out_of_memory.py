"""Whole-stack prediction when the CPU allocator refuses memory: the pass is run again in smaller chunks, and the
segmentation does not change.

The BraTS-sized case and model folder of `predict_speed`, predicted by `nnunet-distilldsm predict` (no TTA, in one
process): without a limit, then under each address-space limit (RLIMIT_AS) of --limit-gib, under which the
default pass (the whole stack) cannot be allocated, so the allocator raises as CUDA's does when a GPU is full.
glibc's mmap threshold is fixed (MALLOC_MMAP_THRESHOLD_) for both: with its default, a dynamic threshold, freed
tensors stay in the heap's address space and the limit is soon reached by memory no longer in use. (Without such a
limit Linux does not refuse an allocation but kills the process when memory runs out; no retry can help there.)
Prints each run's retries, seconds and peak resident MiB, and whether its segmentation equals the unlimited one.

    python -m benchmarks.checks.predict_out_of_memory --workdir DIR [--limit-gib 12 10]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys

import SimpleITK as sitk

from benchmarks.checks.predict_speed import DATASET_ID, NAME, TRAINER, prepare, timed


def predict(env: dict, out: str, limit_bytes: int = None) -> tuple:
    """(wall seconds, peak resident MiB, the retry lines printed) of one `nnunet-distilldsm predict`."""
    def limit():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    inp = os.path.join(env["nnUNet_raw"], f"Dataset{DATASET_ID}_{NAME}", "imagesTs")
    cmd = [os.path.join(os.path.dirname(sys.executable), "nnunet-distilldsm"), "predict", "-i", inp, "-o", out,
           "-d", str(DATASET_ID), "-c", "2d", "-tr", TRAINER, "-f", "0", "-device", "cpu", "--disable_tta",
           "-npp", "0", "-nps", "0"]
    shutil.rmtree(out, ignore_errors=True)
    with open(out + ".log", "w") as log:
        try:
            seconds, mib = timed(cmd, env, stdout=log, preexec_fn=limit)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"{e}; its output: {out}.log") from None
    retries = [line for line in open(out + ".log").read().splitlines() if line.startswith("Whole-stack prediction:")]
    return seconds, mib, retries


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--limit-gib", type=float, nargs="+", default=[12.0])
    a = p.parse_args()
    env = dict(prepare(a.workdir, 155, 240), MALLOC_MMAP_THRESHOLD_=str(2 ** 20))
    limits = {"unlimited": None, **{f"limited to {g:g} GiB": int(g * 2 ** 30) for g in a.limit_gib}}
    outs = {name: os.path.join(a.workdir, "out", "oom_" + name.replace(" ", "_")) for name in limits}
    segmentation = {}
    for name, limit in limits.items():
        seconds, mib, retries = predict(env, outs[name], limit)
        segmentation[name] = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(outs[name], "test.nii.gz")))
        differ = int((segmentation[name] != segmentation["unlimited"]).sum())
        print(f"{name}: {seconds:.1f} s, peak resident {mib:.0f} MiB, {len(retries)} retries, "
              f"{differ} of {segmentation[name].size} voxels differ from the unlimited run's segmentation", flush=True)
        for line in retries:
            print("   ", line)


if __name__ == "__main__":
    main()
