"""`nnunet-distilldsm`: the plugin's helper commands (the benchmark and the demo: `python -m benchmarks`)."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="nnunet-distilldsm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("trainer-dir",
                   help="print the folder for: export nnUNet_extTrainer=$(nnunet-distilldsm trainer-dir)")
    sub.add_parser("predict", help="nnUNetv2_predict for slab models, whole stacks at once: exact, no slabs along "
                                   "depth, no half-written files", add_help=False)
    sub.add_parser("from-2d", help="write a -pretrained_weights file that starts a slab trainer from a trained "
                                   "nnU-Net 2d model", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "predict":
        from nnunet_distilldsm.predict import main as predict
        predict(rest)
        return 0
    if args.command == "from-2d":
        from nnunet_distilldsm.from_2d import main as from_2d
        return from_2d(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from nnunet_distilldsm import trainer_dir
    print(trainer_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
