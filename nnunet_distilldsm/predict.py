"""`nnunet-distilldsm predict`: nnUNetv2_predict's arguments, whole-stack inference, no half-written files.

Same model folders, preprocessing, folds, mirroring and export as nnUNetv2_predict (its
outputs feed nnUNetv2_ensemble, nnUNetv2_evaluate_folder and postprocessing alike); only
the sliding window differs (`WholeStackPredictor`). Results are written into
OUT/.incomplete and moved into OUT when the run has finished, so a killed run leaves in
OUT only files that are complete; --continue_prediction then predicts what is missing.
"""
import argparse
import multiprocessing
import os
import shutil

import torch
from nnunetv2.utilities.file_path_utilities import get_output_folder
from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder

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
                   help="output slices per network pass (default: slab depth x batch size of the plans); "
                        "lower it if memory runs out, the result does not change")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring")
    p.add_argument("--save_probabilities", action="store_true", help="also write .npz/.pkl (for ensembling)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases already complete in OUT")
    p.add_argument("-npp", type=int, default=3, help="preprocessing processes")
    p.add_argument("-nps", type=int, default=3, help="export processes")
    p.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"))
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    args.f = [f if f == "all" else int(f) for f in args.f]
    return args


def cases_to_predict(predictor: WholeStackPredictor, input_folder: str, output_folder: str, save_probabilities: bool,
                     skip_complete: bool):
    """(input file lists, case ids); with skip_complete, cases whose outputs are all in output_folder are left out."""
    ending = predictor.dataset_json["file_ending"]
    lists = create_lists_from_splitted_dataset_folder(input_folder, ending)
    ids = [os.path.basename(files[0])[:-(len(ending) + 5)] for files in lists]
    wanted = [ending] + ([".npz", ".pkl"] if save_probabilities else [])
    keep = [i for i, case in enumerate(ids)
            if not (skip_complete and all(os.path.isfile(os.path.join(output_folder, case + e)) for e in wanted))]
    return [lists[i] for i in keep], [ids[i] for i in keep]


def main(argv=None) -> None:
    args = parse(argv)
    if args.device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    predictor = WholeStackPredictor(tile_step_size=args.step_size, use_mirroring=not args.disable_tta,
                                    device=torch.device(args.device), verbose=args.verbose,
                                    allow_tqdm=False, chunk=args.chunk)
    predictor.initialize_from_trained_model_folder(get_output_folder(args.d, args.tr, args.p, args.c), args.f,
                                                   args.chk)
    lists, ids = cases_to_predict(predictor, args.i, args.o, args.save_probabilities, args.continue_prediction)
    print(f"{len(ids)} cases to predict with whole stacks")
    if not ids:
        return
    staging = os.path.join(args.o, STAGING)
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run may be truncated
    os.makedirs(staging)
    predictor.predict_from_files(lists, [os.path.join(staging, c) for c in ids], save_probabilities=args.save_probabilities,
                                 num_processes_preprocessing=args.npp, num_processes_segmentation_export=args.nps)
    for name in sorted(os.listdir(staging)):
        os.replace(os.path.join(staging, name), os.path.join(args.o, name))
    os.rmdir(staging)
