"""`nnunet-distilldsm predict`: nnUNetv2_predict's arguments, whole-stack inference; files appear in OUT complete.

Same model folders, preprocessing, folds, mirroring and export as nnUNetv2_predict (its
outputs feed nnUNetv2_ensemble, nnUNetv2_evaluate_folder and postprocessing alike); only
the sliding window differs (`WholeStackPredictor`).

Each case is exported by nnU-Net's `export_prediction_from_logits`, in -nps background
processes as nnUNetv2_predict does (with -npp 0 -nps 0, preprocessing and export run in
this process, as there), into OUT/.incomplete/. As soon as a case's export has returned,
all its files (CASE plus the dataset's file ending, and with --save_probabilities CASE.npz
and CASE.pkl) are moved into OUT (os.replace; .npz and .pkl first, the segmentation last).
So a file in OUT is always complete, and a run killed after k of N cases keeps those k
cases in OUT. What a killed run left in OUT/.incomplete/ (cases being exported, possibly
partial) is deleted when the next run starts. --continue_prediction skips the cases whose
files are all in OUT and predicts the others; without it every case is predicted again and
its new files replace the old ones when complete. dataset.json and plans.json are written
into OUT at the start, as nnUNetv2_predict writes them.

The loop that hands cases from preprocessing to the network and to the export processes is
ours, modelled on nnUNetPredictor.predict_from_data_iterator (which returns only when every
export is done, so it cannot say when one case is); the steps it calls are nnU-Net's: the
preprocessing iterator (-npp processes), `predict_logits_from_preprocessed_data` (the folds'
ensemble), the export, and the checks that export processes are alive and not overloaded.
"""
import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import time

import torch
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.inference.export_prediction import export_prediction_from_logits
from nnunetv2.utilities.file_path_utilities import check_workers_alive_and_busy, get_output_folder
from nnunetv2.utilities.utils import (
    create_lists_from_splitted_dataset_folder,
    get_identifiers_from_splitted_dataset_folder,
)

from nnunet_distilldsm.whole_stack_predictor import WholeStackPredictor

STAGING = ".incomplete"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nnunet-distilldsm predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", required=True, help="input folder (CASE_0000.nii.gz, ... as for nnUNetv2_predict)")
    p.add_argument("-o", required=True, help="output folder")
    p.add_argument("-d", required=True, help="dataset name or id")
    p.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("-tr", default="DistillDSMTrainer", help="trainer (default DistillDSMTrainer)")
    p.add_argument("-c", default="2d", help="configuration (default 2d)")
    p.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds (default 0 1 2 3 4)")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name (default checkpoint_final.pth)")
    p.add_argument("-step_size", type=float, default=0.5, help="in-plane tile step, fraction of the tile")
    p.add_argument("--chunk", type=int, default=None,
                   help="output slices per network pass (default: slab depth x batch size of the plans, at "
                        "least 8 x the network's reach); halved when a pass runs out of memory, lower it if the "
                        "system kills the process; the result does not change")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring")
    p.add_argument("--save_probabilities", action="store_true", help="also write .npz/.pkl (for ensembling)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases already complete in OUT")
    p.add_argument("-npp", type=int, default=3, help="preprocessing processes (0: in this process)")
    p.add_argument("-nps", type=int, default=3, help="export processes (0: in this process)")
    p.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"))
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.npp < 0 or args.nps < 0:
        p.error("-npp and -nps count worker processes: give 0 (in this process) or more")
    args.f = [f if f == "all" else int(f) for f in args.f]
    return args


def case_files(file_ending: str, save_probabilities: bool):
    """The endings of one case's output files, in the order they are moved into OUT (segmentation last)."""
    return ([".npz", ".pkl"] if save_probabilities else []) + [file_ending]


def input_cases(predictor: WholeStackPredictor, input_folder: str, output_folder: str, save_probabilities: bool,
                skip_complete: bool):
    """(input file lists, case ids) of input_folder, by nnU-Net's own rules (CASE_XXXX + file ending); with
    skip_complete, cases whose output files are all in output_folder are left out."""
    ending = predictor.dataset_json["file_ending"]
    ids = [str(i) for i in get_identifiers_from_splitted_dataset_folder(input_folder, ending)]
    lists = create_lists_from_splitted_dataset_folder(input_folder, ending, ids, num_processes=1)
    wanted = case_files(ending, save_probabilities)
    keep = [i for i, case in enumerate(ids)
            if not (skip_complete and all(os.path.isfile(os.path.join(output_folder, case + e)) for e in wanted))]
    return [lists[i] for i in keep], [ids[i] for i in keep]


def preprocessed_cases(predictor: WholeStackPredictor, lists, ofiles, num_processes: int):
    """nnU-Net's preprocessing iterator with -npp worker processes; with -npp 0 the same preprocessing in this
    process, as nnUNetv2_predict -npp 0 -nps 0 runs (no worker to start, each of which imports torch again)."""
    if num_processes > 0:
        yield from predictor._internal_get_data_iterator_from_lists_of_filenames(lists, None, ofiles, num_processes)
        return
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=predictor.verbose_preprocessing)
    for files, ofile in zip(lists, ofiles):
        data, _, properties = preprocessor.run_case(files, None, predictor.plans_manager,
                                                    predictor.configuration_manager, predictor.dataset_json)
        yield {"data": torch.from_numpy(data).to(torch.float32), "data_properties": properties, "ofile": ofile}


def predict_publishing_each_case(predictor: WholeStackPredictor, lists, ids, output_folder: str,
                                 save_probabilities: bool, num_processes_preprocessing: int,
                                 num_processes_export: int) -> None:
    """Predict the cases, moving each one's files from output_folder/.incomplete into output_folder as soon as
    its export has returned (see the module's docstring)."""
    staging = os.path.join(output_folder, STAGING)
    os.makedirs(staging, exist_ok=True)
    endings = case_files(predictor.dataset_json["file_ending"], save_probabilities)
    pending = {}  # case id -> the export's AsyncResult

    def publish(case):
        for e in endings:
            os.replace(os.path.join(staging, case + e), os.path.join(output_folder, case + e))
        print(f"{case}: written to {output_folder}")

    def publish_finished():
        for case, result in list(pending.items()):
            if result.ready():
                result.get()  # an export that raised raises here, and its case stays out of OUT
                publish(case)
                del pending[case]

    data_iterator = preprocessed_cases(predictor, lists, [os.path.join(staging, c) for c in ids],
                                       num_processes_preprocessing)
    with contextlib.ExitStack() as stack:
        export_pool = (stack.enter_context(multiprocessing.get_context("spawn").Pool(num_processes_export))
                       if num_processes_export > 0 else None)
        workers = list(export_pool._pool) if export_pool is not None else []
        for item in data_iterator:
            print(f"\nPredicting {os.path.basename(item['ofile'])}:")
            # as nnU-Net: no more than two predictions queued beyond the export processes (it raises if one died)
            while export_pool is not None and check_workers_alive_and_busy(
                    export_pool, workers, list(pending.values()), allowed_num_queued=2):
                publish_finished()
                time.sleep(0.1)
            logits = predictor.predict_logits_from_preprocessed_data(item["data"]).cpu().numpy()
            export = (logits, item["data_properties"], predictor.configuration_manager, predictor.plans_manager,
                      predictor.dataset_json, item["ofile"], save_probabilities)
            case = os.path.basename(item["ofile"])
            if export_pool is None:  # -nps 0
                export_prediction_from_logits(*export)
                publish(case)
            else:
                pending[case] = export_pool.apply_async(export_prediction_from_logits, export)
            publish_finished()
        while pending:
            if not all(w.is_alive() for w in workers):
                raise RuntimeError("A segmentation export process died, likely killed by the OS for lack of CPU "
                                   "RAM: rerun with fewer export processes (-nps) and --continue_prediction")
            publish_finished()
            time.sleep(0.1)


def main(argv=None) -> None:
    args = parse(argv)
    if args.device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    predictor = WholeStackPredictor(tile_step_size=args.step_size, use_mirroring=not args.disable_tta,
                                    device=torch.device(args.device), verbose=args.verbose,
                                    allow_tqdm=False, chunk=args.chunk)
    predictor.initialize_from_trained_model_folder(get_output_folder(args.d, args.tr, args.p, args.c), args.f,
                                                   args.chk)
    lists, ids = input_cases(predictor, args.i, args.o, args.save_probabilities, args.continue_prediction)
    staging = os.path.join(args.o, STAGING)
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left there may be partial
    print(f"{len(ids)} cases to predict with whole stacks")
    if not ids:
        return
    os.makedirs(args.o, exist_ok=True)
    # what nnUNetv2_predict writes next to its predictions (postprocessing and evaluation read the first two)
    save_json(predictor.dataset_json, os.path.join(args.o, "dataset.json"), sort_keys=False)
    save_json(predictor.plans_manager.plans, os.path.join(args.o, "plans.json"), sort_keys=False)
    with open(os.path.join(args.o, "predict_from_raw_data_args.json"), "w") as f:
        json.dump({"command": "nnunet-distilldsm predict", **vars(args)}, f, indent=4)
    predict_publishing_each_case(predictor, lists, ids, args.o, args.save_probabilities, args.npp, args.nps)
    os.rmdir(staging)
