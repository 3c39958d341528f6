"""Relabel committed benchmark rows of one module per block, after the default became a module after every conv.

Every "Distill DSM..." row recorded before the switch (issue 11) was trained one module per block, under the
trainer names that now train a module after every conv. This renames them to what the profiles call them now:
the model "Distill DSM[, ...]" -> "Distill DSM per block[, ...]" (run-file and cost-file folders, `model`
fields), the default's short-run trainers -> their `DistillDSMTrainer_perBlock_*` twins (`trainer`, and
calibration.json's keys), keeping the name it ran under in `trained_as`. Rows of a module after every conv
keep their names. Idempotent; run from the repository root, then re-aggregate each table with --no-train:

    python benchmarks/relabel_per_block.py benchmarks/results/runs
"""
import glob
import json
import os
import subprocess
import sys

from nnunet_distilldsm.benchmarks.run_store import read_json, slug, write_json

TRAINERS = {f"DistillDSMTrainer_{b}": f"DistillDSMTrainer_perBlock_{b}"
            for b in ("bench", "timed", "calib", "wallclock", "from2d_bench", "from2d_timed")}


def per_block(model: str) -> str:
    if not model.startswith("Distill DSM") or model.startswith("Distill DSM per block") or "after every conv" in model:
        return model
    return "Distill DSM per block" + model[len("Distill DSM"):]


def relabel_profile(folder: str):
    calibration = os.path.join(folder, "calibration.json")
    if os.path.isfile(calibration):
        calib = read_json(calibration)
        write_json(calibration, {f"{TRAINERS.get(k.split('__')[0], k.split('__')[0])}__{k.split('__')[1]}": v
                                 for k, v in calib.items()})
    for path in sorted(glob.glob(os.path.join(folder, "*", "fold*_seed*.json"))):
        record = read_json(path)
        model = per_block(record["model"])
        if model == record["model"]:
            continue
        record.update(model=model, trained_as=record["trainer"], trainer=TRAINERS.get(record["trainer"], record["trainer"]))
        target = os.path.join(folder, slug(model), os.path.basename(path))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        subprocess.run(["git", "mv", path, target], check=True)
        write_json(target, record)
    for path in sorted(glob.glob(os.path.join(folder, "cost", "*.json"))):
        name = os.path.basename(path)[:-len(".json")]
        if name.startswith("Distill_DSM") and not name.startswith("Distill_DSM_per_block") and "after_every_conv" not in name:
            subprocess.run(["git", "mv", path, os.path.join(folder, "cost", "Distill_DSM_per_block" + name[len("Distill_DSM"):]
                                                             + ".json")], check=True)
    for old in glob.glob(os.path.join(folder, "*")):
        if os.path.isdir(old) and not os.listdir(old):
            os.rmdir(old)


if __name__ == "__main__":
    for profile_folder in sorted(glob.glob(os.path.join(sys.argv[1], "*", "*"))):
        relabel_profile(profile_folder)
