"""`nnunet-distilldsm benchmark`: Distill DSM against stock nnU-Net 2d and 3d_fullres, side by side.

Trains (or reuses) four models with the same budget, predicts the same cases in one process
(nnU-Net's stock predictor; the slab model also with the whole-stack predictor), models taking
turns for `--rounds` rounds, and writes benchmarks/results/<dataset>_<profile>.md, .csv and .png:
parameters, FLOPs per voxel, inference and training time, peak training memory, Dice and
HD95 per class (mean +- sd over cases and folds), with time ratios against nnU-Net 2d and 3d.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
import torch

from nnunet_distilldsm.benchmarks.metrics import dice, flops_per_voxel, hd95
from nnunet_distilldsm.benchmarks.model_folder import network_from_model_folder

PROFILES = {  # name -> [(model name, trainer, configuration, predictor)]
    "cpu-small": [("nnU-Net 2d", "nnUNetTrainer_bench", "2d", "stock"),
                  ("nnU-Net 3d_fullres", "nnUNetTrainer_bench", "3d_fullres", "stock"),
                  ("Residual DSM", "ResidualDSMTrainer_bench", "2d", "stock"),
                  ("Distill DSM", "DistillDSMTrainer_bench", "2d", "stock"),
                  ("Distill DSM, whole stack", "DistillDSMTrainer_bench", "2d", "whole-stack")],
    "full": [("nnU-Net 2d", "nnUNetTrainer", "2d", "stock"), ("nnU-Net 3d_fullres", "nnUNetTrainer", "3d_fullres", "stock"),
             ("Residual DSM", "ResidualDSMTrainer", "2d", "stock"), ("Distill DSM", "DistillDSMTrainer", "2d", "stock"),
             ("Distill DSM, whole stack", "DistillDSMTrainer", "2d", "whole-stack")],
    # which slab depth (and so batch of slabs) buys the most accuracy per second of training; all predicted
    # whole-stack, so inference is the same for all
    "slab-sweep": [("nnU-Net 2d", "nnUNetTrainer_bench", "2d", "stock"),
                   ("Distill DSM, slab 4", "DistillDSMTrainer_slab4_bench", "2d", "whole-stack"),
                   ("Distill DSM, slab 8", "DistillDSMTrainer_slab8_bench", "2d", "whole-stack"),
                   ("Distill DSM, slab planned", "DistillDSMTrainer_bench", "2d", "whole-stack"),
                   ("Distill DSM, slab 16", "DistillDSMTrainer_slab16_bench", "2d", "whole-stack")],
    "tiny": [("nnU-Net 2d", "nnUNetTrainer_tiny", "2d", "stock"), ("Distill DSM", "DistillDSMTrainer_tiny", "2d", "stock"),
             ("Distill DSM, whole stack", "DistillDSMTrainer_tiny", "2d", "whole-stack")],
}
PREDICTORS = {"stock": "nnunetv2.inference.predict_from_raw_data.nnUNetPredictor",
              "whole-stack": "nnunet_distilldsm.whole_stack_predictor.WholeStackPredictor"}


def say(msg: str):
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def nnunet(cmd: List[str]):
    exe = os.path.join(os.path.dirname(sys.executable), cmd[0])
    subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], check=True)


def dataset_folder(root: str, dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    return os.path.join(root, maybe_convert_to_dataset_name(dataset))


def cases_to_predict(raw: str, preprocessed: str, fold: int, ending: str):
    """[(case id, image files, label file)]: imagesTs with labelsTs if present, else fold's validation cases."""
    if os.path.isdir(os.path.join(raw, "labelsTs")):
        ids = sorted(f[:-len(ending)] for f in os.listdir(os.path.join(raw, "labelsTs")) if f.endswith(ending))
        img, lab = "imagesTs", "labelsTs"
    else:
        ids = sorted(json.load(open(os.path.join(preprocessed, "splits_final.json")))[fold]["val"])
        img, lab = "imagesTr", "labelsTr"
    return [(i, sorted(os.path.join(raw, img, f) for f in os.listdir(os.path.join(raw, img))
                       if f.startswith(i + "_") and f.endswith(ending) and len(f) == len(i) + 5 + len(ending)),
             os.path.join(raw, lab, i + ending)) for i in ids]


def load_predictor(kind: str, model_folder: str, fold: int, device: torch.device):
    import pydoc
    predictor = pydoc.locate(PREDICTORS[kind])(device=device, verbose=False, verbose_preprocessing=False,
                                               allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder, (fold,), "checkpoint_final.pth")
    return predictor


def predict_timed(predictor, cases, out_dir: str) -> float:
    """Seconds per input voxel to predict `cases` (reading, preprocessing, network, export)."""
    os.makedirs(out_dir, exist_ok=True)
    voxels = sum(np.prod(sitk.ReadImage(c[1][0]).GetSize()) for c in cases)
    t = time.perf_counter()
    predictor.predict_from_files([c[1] for c in cases], [os.path.join(out_dir, c[0]) for c in cases],
                                 save_probabilities=False, overwrite=True, num_processes_preprocessing=1,
                                 num_processes_segmentation_export=1)
    return (time.perf_counter() - t) / voxels


def network_cost(model_folder: str, fold: int) -> Dict[str, float]:
    net, cfg, n_in = network_from_model_folder(model_folder, fold, deep_supervision=False)
    return {"params": sum(p.numel() for p in net.parameters()),
            "flops_per_voxel": flops_per_voxel(net, (1, n_in, *cfg.patch_size))}


def mean_sd(values: List[float]) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "nan"
    return f"{statistics.mean(v):.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def run_benchmark(dataset: str, folds: List[int], profile: str, device: str = "cpu", out_root: str = "benchmarks",
                  train: bool = True, rounds: int = 3) -> List[dict]:
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results
    if not (nnUNet_raw and nnUNet_preprocessed and nnUNet_results):
        raise SystemExit("benchmark: set nnUNet_raw, nnUNet_preprocessed and nnUNet_results (see nnU-Net's docs)")
    raw, pre = dataset_folder(nnUNet_raw, dataset), dataset_folder(nnUNet_preprocessed, dataset)
    name = os.path.basename(raw)
    models = PROFILES[profile]
    if not os.path.isfile(os.path.join(pre, "nnUNetPlans.json")) or not all(
            os.path.isdir(os.path.join(pre, f"nnUNetPlans_{c}")) for c in {m[2] for m in models}):
        say(f"{name}: plan and preprocess")
        nnunet(["nnUNetv2_plan_and_preprocess", "-d", dataset, "-c", *sorted({m[2] for m in models}), "-np", "2"])
    dataset_json = json.load(open(os.path.join(raw, "dataset.json")))
    ending = dataset_json["file_ending"]
    labels = {v: k for k, v in dataset_json["labels"].items() if isinstance(v, int) and v > 0}
    dev = torch.device(device)
    folder = lambda trainer, config: os.path.join(nnUNet_results, name, f"{trainer}__nnUNetPlans__{config}")  # noqa
    pred_dir = lambda model, fold: os.path.join(out_root, "work", name, model.replace(" ", "_").replace(",", ""),  # noqa
                                                f"fold_{fold}")
    for model, trainer, config, _ in models:
        for fold in folds:
            if not os.path.isfile(os.path.join(folder(trainer, config), f"fold_{fold}", "checkpoint_final.pth")):
                if not train:
                    raise SystemExit(f"benchmark: {folder(trainer, config)} fold {fold} is not trained (drop --no-train)")
                say(f"{model}: train fold {fold} ({trainer}, {config})")
                nnunet(["nnUNetv2_train", dataset, config, str(fold), "-tr", trainer, "-device", device])
    # inference time: every model predicts the same cases in turn, `rounds` times; the median round counts
    infer = {(m[0], f): [] for m in models for f in folds}
    cases_of = {fold: cases_to_predict(raw, pre, fold, ending) for fold in folds}
    for fold in folds:
        cases = cases_of[fold]
        predictors = {m[0]: load_predictor(m[3], folder(m[1], m[2]), fold, dev) for m in models}
        for r in range(rounds):
            for model, *_ in models:
                say(f"{model}: predict fold {fold}, round {r + 1} of {rounds}")
                infer[model, fold].append(predict_timed(predictors[model], cases, pred_dir(model, fold)))
    rows, train_cost = [], {}
    for model, trainer, config, _ in models:
        per_case = {f"dice_{n}": [] for n in labels.values()} | {f"hd95_{n}": [] for n in labels.values()}
        for fold in folds:
            for case, _, label_file in cases_of[fold]:
                ref_img = sitk.ReadImage(label_file)
                ref = sitk.GetArrayFromImage(ref_img)
                pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(pred_dir(model, fold), case + ending)))
                for v, n in labels.items():
                    per_case[f"dice_{n}"].append(dice(pred, ref, v))
                    per_case[f"hd95_{n}"].append(hd95(pred, ref, v, ref_img.GetSpacing()[::-1]))
        if (trainer, config) not in train_cost:
            say(f"{model}: cost")
            step = json.loads(subprocess.run(
                [sys.executable, "-m", "nnunet_distilldsm.benchmarks.train_step", folder(trainer, config),
                 "--fold", str(folds[0])], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            train_cost[trainer, config] = {**network_cost(folder(trainer, config), folds[0]), **step}
        n_cases = len(per_case[f"dice_{labels[min(labels)]}"])
        case_dice = [np.nanmean([per_case[f"dice_{n}"][i] for n in labels.values()]) for i in range(n_cases)]
        case_hd = [np.nanmean([per_case[f"hd95_{n}"][i] for n in labels.values()]) for i in range(n_cases)]
        rows.append({"model": model, "trainer": trainer, "configuration": config, **train_cost[trainer, config],
                     "infer_s_per_voxel": statistics.mean(statistics.median(infer[model, f]) for f in folds),
                     "dice_mean": mean_sd(case_dice), **{k: mean_sd(v) for k, v in per_case.items() if k.startswith("dice")},
                     "hd95_mean": mean_sd(case_hd), **{k: mean_sd(v) for k, v in per_case.items() if k.startswith("hd95")},
                     "_dice": statistics.mean(case_dice), "_per_class": {n: np.nanmean(per_case[f"dice_{n}"]) for n in labels.values()}})
        say(f"{model}: Dice {rows[-1]['dice_mean']}, {rows[-1]['infer_s_per_voxel']:.2e} s/voxel inference")
    write_results(rows, name, out_root, profile, folds)
    return rows


def ratio(rows, row, key, ref_model):
    ref = next((r for r in rows if r["model"] == ref_model), None)
    return f"{row[key] / ref[key]:.2f}" if ref else "n/a"


def write_results(rows: List[dict], name: str, out_root: str, profile: str, folds: List[int]):
    out = os.path.join(out_root, "results")
    os.makedirs(out, exist_ok=True)
    for r in rows:
        for key in ("infer_s_per_voxel", "train_s_per_iter", "peak_train_mem_mb"):
            r[f"{key}_vs_2d"] = ratio(rows, r, key, "nnU-Net 2d")
            r[f"{key}_vs_3d"] = ratio(rows, r, key, "nnU-Net 3d_fullres")
    cols = ["model", "params", "flops_per_voxel", "infer_s_per_voxel", "train_s_per_iter", "peak_train_mem_mb",
            "peak_rss_mb", "dice_mean"] + sorted(k for k in rows[0] if k.startswith("dice_") and k != "dice_mean") + ["hd95_mean"] + \
        sorted(k for k in rows[0] if k.startswith("hd95_") and k != "hd95_mean") + \
        ["infer_s_per_voxel_vs_2d", "infer_s_per_voxel_vs_3d", "train_s_per_iter_vs_2d", "train_s_per_iter_vs_3d",
         "peak_train_mem_mb_vs_2d", "peak_train_mem_mb_vs_3d",
         "trainer", "configuration", "batch", "patch"]
    fmt = lambda v: f"{v:.3e}" if isinstance(v, float) and (abs(v) < 1e-2 or abs(v) > 1e5) else (  # noqa: E731
        f"{v:.3f}" if isinstance(v, float) else str(v))
    stem = f"{name}_{profile}"
    with open(os.path.join(out, f"{stem}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([[r[c] for c in cols] for r in rows])
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(f"# {name}: profile {profile}, folds {folds}, {torch.get_num_threads()} threads\n\n")
        f.write("Written by `nnunet-distilldsm benchmark`. Dice/HD95: mean +- sd over cases; times per voxel "
                "through nnU-Net's stock predictor (', whole stack': `nnunet-distilldsm predict`'s), median of the "
                "rounds; training step from plans.json's batch and patch (peak_train_mem_mb: held at the end of the forward pass, "
                "by malloc's count; peak_rss_mb: the process's peak resident memory).\n\n")
        f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r[c]) for c in cols) + " |\n")
    plot(rows, os.path.join(out, f"{stem}.png"), f"{name}, {profile}")
    say(f"wrote {out}/{stem}.md, .csv, .png")


def plot(rows: List[dict], path: str, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        a.scatter(r["infer_s_per_voxel"] * 1e6, r["_dice"], s=70, color=colors[i % len(colors)], label=r["model"])
    a.legend(fontsize=8, loc="lower right")
    a.margins(0.15)
    a.set_xlabel("inference time per voxel (us)")
    a.set_ylabel("mean Dice")
    a.set_title("accuracy against cost")
    classes = list(rows[0]["_per_class"])
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        b.bar(np.arange(len(classes)) + i * width, [r["_per_class"][c] for c in classes], width, label=r["model"],
              color=colors[i % len(colors)])
    b.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    b.set_ylabel("Dice")
    b.set_ylim(0, 1.25)
    b.set_title("Dice per class")
    b.legend(fontsize=8, loc="upper left", ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="nnunet-distilldsm benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset", required=True,
                   help="dataset id or name; 'synthetic' writes the embedded depth-context dataset (901) and "
                        "'real-scans' builds the real-scan brain dataset (902) if missing")
    p.add_argument("-f", "--folds", type=int, nargs="+", default=[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu-small")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--out", default="benchmarks", help="writes <out>/results/<dataset>_<profile>.md, .csv, .png")
    p.add_argument("--no-train", action="store_true", help="only use models that are already trained")
    p.add_argument("--rounds", type=int, default=3, help="prediction rounds per model, interleaved; the median counts")
    a = p.parse_args(argv)
    dataset = a.dataset
    if dataset == "synthetic":
        from nnunetv2.paths import nnUNet_raw
        from nnunet_distilldsm.synthetic import write_dataset
        dataset = "901"
        if nnUNet_raw and not os.path.isdir(os.path.join(nnUNet_raw, "Dataset901_DepthContext")):
            write_dataset(nnUNet_raw, 901)
    elif dataset == "real-scans":
        from nnunetv2.paths import nnUNet_raw
        from nnunet_distilldsm.real_scans import DATASET_NAME, build_brain_dataset
        dataset = "902"
        if nnUNet_raw and not os.path.isdir(os.path.join(nnUNet_raw, f"Dataset902_{DATASET_NAME}")):
            build_brain_dataset(nnUNet_raw, 902)
    run_benchmark(dataset, a.folds, a.profile, a.device, a.out, not a.no_train, a.rounds)
