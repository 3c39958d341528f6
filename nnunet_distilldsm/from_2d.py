"""`nnunet-distilldsm from-2d`: start a slab trainer from a trained nnU-Net 2d model.

    nnunet-distilldsm from-2d RESULTS/DatasetX/nnUNetTrainer__nnUNetPlans__2d/fold_0/checkpoint_final.pth -o init.pth
    nnUNetv2_train DATASET 2d 0 -tr DistillDSMTrainer -pretrained_weights init.pth

The slab network keeps every parameter name of the planned 2d network and adds the depth
modules. nnU-Net's `-pretrained_weights` (run/load_pretrained_weights.py) asserts that every key
of the new network but the segmentation layers is in the file with the same shape, so a 2d
checkpoint alone does not load. This writes one that does: every key of TRAINER's slab network,
built from the plans.json and dataset.json of the 2d model folder, with the 2d tensors copied
bitwise and the modules as the trainer initialises them (seeded, so the file is reproducible).

Slices as channels (`input_neighbours` k > 0): the first conv takes C*(2k+1) channels; it starts
from the 2d weights on the centre slice's channels and zeros on the neighbours', so the network
starts computing exactly the 2d network's features.

Distill DSM modules start from the trainer's initialisation, or (`--modules identity`, or a
trainer whose recipe's `module_start` is "identity") as identity convolutions (torch's dirac init, zero
bias): each module then passes its slice's channels on unchanged, except that the quarter it sends
to each neighbour comes from that neighbour, so the network starts close to the 2d one.

nnU-Net's loader skips the segmentation layers (`.seg_layers.`): the file holds the 2d ones, but
training starts them from their initialisation. To keep them (same dataset and labels), `--keep-seg-layers`
writes the fine-tune's first checkpoint instead, with nnU-Net's own save_checkpoint, where nnU-Net's `--c`
finds it:

    nnunet-distilldsm from-2d .../fold_0/checkpoint_final.pth --keep-seg-layers
    nnUNetv2_train DATASET 2d 0 -tr DistillDSMTrainer --c
"""
import argparse
import copy
import os
import sys
import tempfile
from typing import Optional

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_distilldsm.architectures.depth_shift import DistillDSM
from nnunet_distilldsm.trainers.distill_dsm_trainer import SlabTrainer
from nnunet_distilldsm.trainers.slab_plans import SLAB_NETWORK, SlabPlanError

SEG_LAYERS = ".seg_layers."  # what nnU-Net's load_pretrained_weights skips


class From2dError(ValueError):
    """A checkpoint or trainer `from-2d` cannot convert; the message says what differs and what to do."""


def find_trainer(name: str) -> type:
    """The trainer class named `name`: the plugin's own trainers, else nnU-Net's lookup (its trainers, then the
    folders in nnUNet_extTrainer: a user's variants, the benchmark's)."""
    from nnunet_distilldsm.trainers import TRAINERS
    if name in TRAINERS:
        return TRAINERS[name]
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    return recursive_find_trainer_class_by_name(name)


def describe(weights: dict) -> dict:
    """What a U-Net state dict says about its network: conv dimensionality, architecture, stages, features,
    input channels, classes (nnU-Net's PlainConvUNet / ResidualEncoderUNet key layout)."""
    convs = [(k, v) for k, v in weights.items() if k.startswith("encoder.") and k.endswith("conv.weight")
             and v.ndim >= 3]
    stages = sorted({int(k.split(".")[2]) for k, _ in convs if k.startswith("encoder.stages.")})
    features = [next(v.shape[0] for k, v in convs if k.startswith(f"encoder.stages.{s}.")) for s in stages]
    seg = sorted((int(k.split(".")[2]), v) for k, v in weights.items()
                 if k.startswith("decoder.seg_layers.") and k.endswith(".weight"))
    return {
        "convolutions": f"{convs[0][1].ndim - 2}-D" if convs else "none",
        "architecture": "residual encoder (encoder.stem: ResidualEncoderUNet)" if any(
            k.startswith("encoder.stem.") for k in weights) else "plain conv encoder (PlainConvUNet)",
        "stages": len(stages),
        "features per stage": features,
        "input channels": convs[0][1].shape[1] if convs else None,
        "classes": seg[-1][1].shape[0] if seg else None,
    }


def mismatch(ckpt_weights: dict, net_weights: dict) -> Optional[str]:
    """None if the checkpoint's tensors are exactly the network's keys and shapes, else what differs."""
    missing = [k for k in net_weights if k not in ckpt_weights]
    unexpected = [k for k in ckpt_weights if k not in net_weights]
    shapes = [k for k in net_weights if k in ckpt_weights and ckpt_weights[k].shape != net_weights[k].shape]
    if not (missing or unexpected or shapes):
        return None
    have, want = describe(ckpt_weights), describe(net_weights)
    differs = [f"{field}: checkpoint {have[field]}, plans {want[field]}"
               for field in want if have[field] != want[field]]
    if not differs:  # same outline, different details: name the first tensors
        differs = [f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for what, keys in
                   (("missing from the checkpoint", missing), ("not in the planned network", unexpected),
                    ("shape differs", shapes)) if keys]
    return "; ".join(differs)


def first_conv_name(network: torch.nn.Module) -> str:
    return next(name for name, m in network.named_modules() if isinstance(m, torch.nn.Conv2d))


def widen_first_conv(weight: torch.Tensor, channels_in: int, neighbours: int) -> torch.Tensor:
    """2d first-conv weight (F, C, ...) -> (F, C*(2k+1), ...): modality m's weights on channel
    m*(2k+1) + k (SlabUNet's centre slice), zeros on the neighbours'."""
    wide = weight.new_zeros((weight.shape[0], channels_in * (2 * neighbours + 1), *weight.shape[2:]))
    for m in range(channels_in):
        wide[:, m * (2 * neighbours + 1) + neighbours] = weight[:, m]
    return wide


def load_2d_model(checkpoint: str):
    """(checkpoint dict, plans, dataset.json, configuration name, model folder) of a 2d model's checkpoint."""
    if not os.path.isfile(checkpoint):
        raise From2dError(f"from-2d: no file {checkpoint}")
    folder = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
    files = {name: os.path.join(folder, name) for name in ("plans.json", "dataset.json")}
    absent = [f for f in files.values() if not os.path.isfile(f)]
    if absent:
        raise From2dError(
            f"from-2d: {checkpoint} is not inside an nnU-Net model folder: {' and '.join(absent)} missing. Give the "
            f"checkpoint where nnUNetv2_train wrote it: "
            f"RESULTS/DatasetX/TRAINER__PLANS__2d/fold_N/checkpoint_final.pth "
            f"(the folder above fold_N holds that training's plans.json and dataset.json)")
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise From2dError(f"from-2d: cannot read {checkpoint} as a torch checkpoint: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "network_weights" not in ckpt or "configuration" not in ckpt.get("init_args", {}):
        raise From2dError(f"from-2d: {checkpoint} is not a checkpoint written by nnUNetv2_train (it has no "
                          f"network_weights and init_args['configuration'])")
    return ckpt, load_json(files["plans.json"]), load_json(files["dataset.json"]), ckpt["init_args"]["configuration"], \
        folder


def check_is_stock_2d(ckpt: dict, plans: dict, configuration: str, checkpoint: str, folder: str) -> None:
    """Refuse slab checkpoints and checkpoints of configurations with 3-D patches."""
    source_trainer = ckpt.get("trainer_name", "?")
    try:
        source_cls = find_trainer(source_trainer)
    except (RuntimeError, AssertionError):
        source_cls = None
    configs = plans.get("configurations", {})
    if configuration not in configs:
        raise From2dError(
            f"from-2d: {checkpoint} was trained on configuration {configuration!r}, which the plans.json next to it "
            f"({folder}) does not have (it has {list(configs)}): the model folder mixes files of different trainings. "
            f"Convert a checkpoint from the model folder it was trained in")
    cm = PlansManager(copy.deepcopy(plans)).get_configuration(configuration)
    if cm.network_arch_class_name == SLAB_NETWORK or (source_cls and issubclass(source_cls, SlabTrainer)):
        raise From2dError(
            f"from-2d: {checkpoint} was trained by {source_trainer}, a slab trainer (its network is "
            f"{SLAB_NETWORK.rsplit('.', 1)[-1]}): from-2d converts checkpoints of nnU-Net's own 2d trainers. A slab "
            f"checkpoint already fits its own trainer: continue that training with nnUNetv2_train ... -tr "
            f"{source_trainer} --c, or give the checkpoint itself as -pretrained_weights to a trainer with the same "
            f"modules")
    if len(cm.patch_size) != 2:
        raise From2dError(
            f"from-2d: {checkpoint} is a {configuration!r} checkpoint (patch {list(cm.patch_size)}, "
            f"{len(cm.patch_size)}-D convolutions); from-2d starts a slab trainer from an nnU-Net 2d model, whose "
            f"2-D convolutions the slab network reuses. Train one with nnUNetv2_train DATASET 2d FOLD and convert "
            f"RESULTS/DatasetX/{source_trainer}__{plans.get('plans_name', 'PLANS')}__2d/fold_N/checkpoint_final.pth")


MODULE_STARTS = ("initialised", "identity")


def start_modules_as_identity(network: torch.nn.Module) -> int:
    """Dirac-initialise every Distill DSM module's conv (zero bias); returns how many."""
    modules = [m for m in network.modules() if isinstance(m, DistillDSM)]
    with torch.no_grad():
        for m in modules:
            torch.nn.init.dirac_(m.distill.weight)
            torch.nn.init.zeros_(m.distill.bias)
    return len(modules)


def resolve_trainer(trainer: str, modules: Optional[str], checkpoint: str):
    """(trainer class, module start) for `trainer`, or a From2dError saying why it cannot start from 2d."""
    try:
        trainer_cls = find_trainer(trainer)
    except (RuntimeError, AssertionError) as e:
        raise From2dError(f"from-2d: no trainer {trainer!r}: {e}") from e
    if not issubclass(trainer_cls, SlabTrainer):
        raise From2dError(
            f"from-2d: {trainer} is not a slab trainer (a SlabTrainer subclass: DistillDSMTrainer, "
            f"ResidualDSMTrainer, SlicesAsChannelsTrainer, ...). A trainer with nnU-Net's 2d "
            f"network takes the 2d checkpoint itself: nnUNetv2_train DATASET 2d FOLD -tr {trainer} "
            f"-pretrained_weights {checkpoint}")
    modules = modules or trainer_cls.recipe.module_start
    if modules not in MODULE_STARTS:
        raise From2dError(f"from-2d: --modules {modules!r}: choose one of {', '.join(MODULE_STARTS)}")
    return trainer_cls, modules


def converted(checkpoint: str, trainer: str = "DistillDSMTrainer", seed: int = 0, modules: Optional[str] = None):
    """(trainer class, 2d plans, dataset.json, configuration, fold, slab network state dict with every 2d tensor
    copied, summary) for a 2d checkpoint; raises From2dError for any that does not fit."""
    trainer_cls, modules = resolve_trainer(trainer, modules, checkpoint)
    ckpt, plans, dataset_json, configuration, folder = load_2d_model(checkpoint)
    check_is_stock_2d(ckpt, plans, configuration, checkpoint, folder)

    pm = PlansManager(copy.deepcopy(plans))
    cm = pm.get_configuration(configuration)
    n_in = determine_num_input_channels(pm, cm, dataset_json)
    n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
    weights_2d = ckpt["network_weights"]
    planned = nnUNetTrainer.build_network_architecture(pm, cm, n_in, n_out, True).state_dict()
    differs = mismatch(weights_2d, planned)
    if differs:
        raise From2dError(
            f"from-2d: {checkpoint} does not fit the plans.json and dataset.json next to it ({folder}): {differs}. "
            f"The checkpoint was trained with another dataset, plans or trainer than that folder describes (the model "
            f"folder mixes files of different trainings). Convert a checkpoint from the model folder it was trained "
            f"in: nnUNetv2_train saves that training's plans.json and dataset.json there")

    try:
        splans = trainer_cls.slab_plans(plans, configuration)
    except SlabPlanError as e:
        raise From2dError(f"from-2d: {e}") from e
    spm = PlansManager(splans)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = trainer_cls.build_network_architecture(spm, spm.get_configuration(configuration), n_in, n_out, True)
    if modules == "identity" and not start_modules_as_identity(network):
        raise From2dError(f"from-2d: --modules identity needs Distill DSM modules; {trainer}'s network has none")
    initial = network.state_dict()

    neighbours = getattr(network, "input_neighbours", 0)
    first = first_conv_name(network) + ".weight"
    first_ptr = initial[first].data_ptr()
    merged, widened = dict(initial), []
    for key, value in weights_2d.items():
        if key not in initial:
            raise From2dError(f"from-2d: {trainer}'s network has no tensor {key!r} of the 2d network: it does not "
                              f"keep the 2d network's parameter names, so from-2d cannot start it from 2d weights")
        if value.shape == initial[key].shape:
            merged[key] = value
        elif neighbours and initial[key].data_ptr() == first_ptr:  # the first conv, or one of its aliases
            merged[key] = widen_first_conv(value, n_in, neighbours)
            widened.append(key)
        else:
            raise From2dError(f"from-2d: {trainer}'s network has {key!r} of shape {tuple(initial[key].shape)}, the "
                              f"2d network {tuple(value.shape)}; from-2d cannot map one onto the other")
    network.load_state_dict(merged)  # copy_ into the parameters: bitwise, aliases stay one tensor
    weights = network.state_dict()
    fold = ckpt["init_args"].get("fold")
    summary = {
        "source_checkpoint": os.path.abspath(checkpoint), "source_trainer": ckpt.get("trainer_name"),
        "dataset": plans.get("dataset_name"), "plans": plans.get("plans_name"), "configuration": configuration,
        "fold": fold, "trainer": trainer, "seed": seed, "modules": modules,
        "transferred": [k for k in weights_2d if SEG_LAYERS not in k and k not in widened],
        "widened_first_conv": widened, "seg_layers_in_file": [k for k in weights_2d if SEG_LAYERS in k],
        "initialised": [k for k in weights if k not in weights_2d],
    }
    return trainer_cls, plans, dataset_json, configuration, fold, weights, summary


def convert(checkpoint: str, out: str, trainer: str = "DistillDSMTrainer", force: bool = False,
            seed: int = 0, modules: Optional[str] = None) -> dict:
    """Write `out`, a -pretrained_weights file for `trainer` made from a 2d checkpoint. Returns a summary.

    modules: "initialised" or "identity" (see the module docstring); None: the trainer recipe's `module_start`."""
    out = os.path.abspath(out)
    if os.path.exists(out) and os.path.isfile(checkpoint) and os.path.samefile(out, checkpoint):
        raise From2dError(f"from-2d: the output {out} is the checkpoint being converted; write to another file")
    if os.path.isdir(out):
        raise From2dError(f"from-2d: -o {out} is a folder; give the file to write, e.g. {out}/dsm_init.pth")
    if os.path.exists(out) and not force:
        raise From2dError(f"from-2d: {out} exists; choose another -o or add --force to replace it")
    *_, weights, summary = converted(checkpoint, trainer, seed, modules)
    save_atomically({"network_weights": weights, "trainer_name": trainer, "from_2d": summary}, out, force)
    return summary


CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")  # what --c looks for


def write_training_start(checkpoint: str, trainer: str = "DistillDSMTrainer", seed: int = 0,
                         modules: Optional[str] = None) -> dict:
    """Write epoch 0 of `trainer`'s training on the 2d model's fold, for `nnUNetv2_train ... --c`: every tensor
    of the 2d model, its segmentation layers included, which -pretrained_weights would skip.

    The file is nnU-Net's own `save_checkpoint` of the trainer built as nnUNetv2_train builds it (fresh
    optimizer, empty log), in nnUNet_results/DATASET/TRAINER__PLANS__2d/fold_F/checkpoint_latest.pth.
    Returns the summary, with "written" added."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    trainer_cls, plans, dataset_json, configuration, fold, weights, summary = converted(
        checkpoint, trainer, seed, modules)
    for variable, value in (("nnUNet_results", nnUNet_results), ("nnUNet_preprocessed", nnUNet_preprocessed)):
        if value is None:
            raise From2dError(f"from-2d --keep-seg-layers writes into the fine-tune's nnU-Net results folder and "
                              f"builds its trainer, which needs {variable}: set it as for nnUNetv2_train")
    fold_dir = get_output_folder(summary["dataset"], trainer, summary["plans"], configuration, fold)
    present = [f for f in CHECKPOINTS if os.path.isfile(os.path.join(fold_dir, f))]
    if present:
        raise From2dError(
            f"from-2d --keep-seg-layers: {fold_dir} already holds {', '.join(present)}, a training of {trainer} that "
            f"nnUNetv2_train --c would continue; nothing was written. Move that folder away to start again from the "
            f"2d model, or use -o for a -pretrained_weights file")
    data = os.path.join(nnUNet_preprocessed, summary["dataset"],
                        PlansManager(trainer_cls.slab_plans(plans, configuration)).get_configuration(
                            configuration).data_identifier)
    if not os.path.isdir(data):
        raise From2dError(f"from-2d --keep-seg-layers: no preprocessed data at {data}; the fine-tune trains on it. "
                          f"Run nnUNetv2_plan_and_preprocess -d {summary['dataset']} -c {configuration} first")
    trainer_plans = dict(copy.deepcopy(plans), continue_training=False)  # what run_training adds before building
    nnunet_trainer = trainer_cls(trainer_plans, configuration, fold, dataset_json, device=torch.device("cpu"))
    nnunet_trainer.initialize()
    nnunet_trainer.network.load_state_dict(weights)
    nnunet_trainer.current_epoch = -1  # save_checkpoint records current_epoch + 1: --c starts at epoch 0
    written = os.path.join(fold_dir, "checkpoint_latest.pth")
    tmp = written + ".partial"
    try:
        nnunet_trainer.save_checkpoint(tmp)
        os.replace(tmp, written)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dict(summary, written=written)


def save_atomically(obj: dict, out: str, force: bool) -> None:
    """torch.save to a temporary file next to `out`, then rename: `out` is complete or absent."""
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(out)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the permissions of a plain new file
        if os.path.exists(out) and not force:
            raise From2dError(f"from-2d: {out} appeared while converting; add --force to replace it")
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nnunet-distilldsm from-2d",
        description="Write a -pretrained_weights file that starts a slab trainer from a trained nnU-Net 2d model: "
                    "the 2d tensors copied, the depth modules initialised. Then: nnUNetv2_train DATASET 2d FOLD "
                    "-tr TRAINER -pretrained_weights OUT")
    parser.add_argument("checkpoint", help="a 2d model's checkpoint, RESULTS/DatasetX/TRAINER__PLANS__2d/fold_N/"
                                           "checkpoint_final.pth (plans.json and dataset.json are read from the "
                                           "folder above fold_N)")
    parser.add_argument("-tr", default="DistillDSMTrainer",
                        help="the slab trainer to start (default DistillDSMTrainer)")
    parser.add_argument("-o", help="the -pretrained_weights file to write (nnU-Net checkpoint format)")
    parser.add_argument("--keep-seg-layers", action="store_true",
                        help="instead of -o: write the fine-tune's first checkpoint (epoch 0, the 2d segmentation "
                             "layers kept) into its nnU-Net results folder, for nnUNetv2_train DATASET 2d FOLD -tr "
                             "TRAINER --c")
    parser.add_argument("--force", action="store_true", help="replace -o if it exists")
    parser.add_argument("--seed", type=int, default=0, help="seed of the modules' initialisation (default 0)")
    parser.add_argument("--modules", choices=MODULE_STARTS, default=None,
                        help="how Distill DSM modules start: as the trainer initialises them, or as identity convs "
                             "(default: the trainer recipe's module_start, 'initialised' for DistillDSMTrainer)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if (args.o is None) == (not args.keep_seg_layers):
        print("From2dError: from-2d: give either -o FILE (a -pretrained_weights file; nnU-Net's loader skips the "
              "segmentation layers) or --keep-seg-layers (a checkpoint for --c that keeps them)", file=sys.stderr)
        return 2
    try:
        if args.keep_seg_layers:
            s = write_training_start(args.checkpoint, args.tr, args.seed, args.modules)
        else:
            s = convert(args.checkpoint, args.o, args.tr, args.force, args.seed, args.modules)
    except From2dError as e:
        print(f"From2dError: {e}", file=sys.stderr)
        return 1
    if args.keep_seg_layers:
        print(f"wrote {s['written']}: epoch 0 of {s['trainer']} with every tensor of the 2d model "
              f"({s['dataset']}, {s['plans']}, {s['configuration']}, fold {s['fold']}), segmentation layers "
              f"included, and {len(s['initialised'])} keys of its modules ({s['modules']}, seed {s['seed']}). Next:\n"
              f"  nnUNetv2_train {s['dataset']} {s['configuration']} {s['fold']} -tr {s['trainer']} "
              f"-p {s['plans']} --c")
        return 0
    print(f"wrote {os.path.abspath(args.o)}: {len(s['transferred'])} keys of the 2d model "
          f"({s['dataset']}, {s['plans']}, {s['configuration']}, fold {s['fold']}), "
          f"{len(s['widened_first_conv'])} widened first-conv key(s), {len(s['initialised'])} keys of "
          f"{s['trainer']}'s modules ({s['modules']}, seed {s['seed']}); nnU-Net's loader skips the "
          f"{len(s['seg_layers_in_file'])} segmentation-layer keys. Next (the 2d model's fold, so that its "
          f"validation cases stay unseen):\n"
          f"  nnUNetv2_train {s['dataset']} {s['configuration']} {s['fold']} -tr {s['trainer']} -p {s['plans']} "
          f"-pretrained_weights {os.path.abspath(args.o)}")
    return 0
