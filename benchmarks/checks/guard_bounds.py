"""The two bounds the tests set, measured over repetitions with today's default (issue 33, item 5).

1. The cost guard (tests/test_cost_guard.py): its own measurement, `measure(planned 128 x 128 plans, depth 8,
   5 rounds)` for the default, one module per block and Residual DSM, repeated; prints each repetition's
   fastest-round time ratio and held-memory ratio to nnU-Net 2d.
2. The slab-depth agreement (tests/test_end_to_end.py::test_two_slab_depths_agree_and_cover_every_slice): the
   `trained` fixture's recipe (Dataset901 of 10 + 3 cases of 16 x 40 x 40, DistillDSMTrainer_demo on fold 0 through
   nnUNetv2_train), repeated with fresh trainings; each model predicts the 3 test cases through nnUNetv2_predict
   at its planned slab depth and at twice it (plans.json's patch edited); prints each case's voxel agreement.

Run alone on the machine, from the repository root:
    python -m benchmarks.checks.guard_bounds [--repetitions 5] [--workdir /tmp/guard_bounds] [--only cost|depth]
"""
import argparse
import json
import os
import shutil
import tempfile

import numpy as np
import SimpleITK as sitk

from benchmarks.nnunet_commands import nnunet_environment, run_nnunet

DATASET = "Dataset901_DepthContext"
TRAINER = "DistillDSMTrainer_demo"


def cost_guard(repetitions: int, workdir: str) -> dict:
    from benchmarks.network_speed import measure
    from benchmarks.planned import planned_plans
    from nnunet_distilldsm.trainers import DistillDSMTrainer, DistillDSMTrainer_perBlock, ResidualDSMTrainer
    plans = planned_plans(128, workdir=os.path.join(workdir, "planned"))
    networks = {"default": DistillDSMTrainer, "per block": DistillDSMTrainer_perBlock,
                "Residual DSM": ResidualDSMTrainer}
    seen = {name: {"ratio_to_2d": [], "held_ratio_to_2d": []} for name in networks}
    for i in range(repetitions):
        costs = measure(plans, depth=8, rounds=5, networks=networks)
        for name in networks:
            for key in seen[name]:
                seen[name][key].append(round(costs[name][key], 4))
        print(f"cost guard, repetition {i + 1}: " + ", ".join(
            f"{n} {costs[n]['ratio_to_2d']:.3f} (held {costs[n]['held_ratio_to_2d']:.4f})" for n in networks),
            flush=True)
    return seen


def slab_depth_agreement(repetitions: int, workdir: str) -> list:
    from benchmarks.synthetic import write_dataset
    env = nnunet_environment(nnUNet_raw=os.path.join(workdir, "raw"), nnUNet_preprocessed=os.path.join(workdir, "pre"),
                             nnUNet_n_proc_DA="1", nnUNet_def_n_proc="1", NNUNET_DISTILLDSM_FINAL_VALIDATION="0")
    if not os.path.isdir(os.path.join(env["nnUNet_preprocessed"], DATASET, "nnUNetPlans_2d")):
        write_dataset(env["nnUNet_raw"], 901, n_train=10, n_test=3, shape=(16, 40, 40))  # conftest's `planned`
        run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "2d", "-np", "2", "-npfp", "2"], env,
                   quiet=True)
    images = os.path.join(env["nnUNet_raw"], DATASET, "imagesTs")
    agreement = []
    for i in range(repetitions):
        rep = dict(env, nnUNet_results=os.path.join(workdir, f"results{i}"))
        model = os.path.join(rep["nnUNet_results"], DATASET, f"{TRAINER}__nnUNetPlans__2d")
        if not os.path.isfile(os.path.join(model, "fold_0", "checkpoint_final.pth")):
            run_nnunet(["nnUNetv2_train", "901", "2d", "0", "-tr", TRAINER, "-device", "cpu"], rep, quiet=True)
        outs = []
        for deeper in (False, True):
            results = rep["nnUNet_results"]
            if deeper:  # the same model, its plans.json's slab depth doubled, in a copy of its results folder
                results = os.path.join(workdir, f"results{i}_deeper")
                shutil.rmtree(results, ignore_errors=True)
                shutil.copytree(rep["nnUNet_results"], results)
                plans_file = os.path.join(results, DATASET, f"{TRAINER}__nnUNetPlans__2d", "plans.json")
                plans = json.load(open(plans_file))
                plans["configurations"]["2d"]["patch_size"][0] *= 2
                json.dump(plans, open(plans_file, "w"))
            out = tempfile.mkdtemp(dir=workdir, prefix=f"pred{i}_")
            run_nnunet(["nnUNetv2_predict", "-i", images, "-o", out, "-d", "901", "-c", "2d", "-tr", TRAINER, "-f",
                        "0", "-device", "cpu", "-npp", "1", "-nps", "1"], dict(rep, nnUNet_results=results),
                       quiet=True)
            outs.append(out)
        cases = sorted(f for f in os.listdir(outs[0]) if f.endswith(".nii.gz"))
        values = [float((sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(outs[0], c)))
                         == sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(outs[1], c)))).mean()) for c in cases]
        agreement.append([round(v, 5) for v in values])
        print(f"slab depth, repetition {i + 1}: voxel agreement per case {agreement[-1]}", flush=True)
    return agreement


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "guard_bounds"))
    p.add_argument("--only", choices=("cost", "depth"))
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    out = {}
    if a.only in (None, "cost"):
        out["cost_guard"] = cost_guard(a.repetitions, a.workdir)
        for name, v in out["cost_guard"].items():
            print(f"{name}: time ratio {min(v['ratio_to_2d']):.3f}-{max(v['ratio_to_2d']):.3f}, held memory ratio "
                  f"{min(v['held_ratio_to_2d']):.4f}-{max(v['held_ratio_to_2d']):.4f}")
    if a.only in (None, "depth"):
        out["slab_depth_agreement"] = agreement = slab_depth_agreement(a.repetitions, a.workdir)
        flat = [v for rep in agreement for v in rep]
        print(f"slab depth agreement: min {min(flat):.5f}, median {np.median(flat):.5f} over {len(flat)} cases")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
