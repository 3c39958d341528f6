"""`nnunet-distilldsm from-2d`: a stock nnU-Net 2d checkpoint -> a -pretrained_weights file for a slab trainer.

What nnU-Net loads is checked through nnU-Net's own code: the test process runs `get_trainer_from_args` and
`maybe_load_checkpoint`, the two calls `nnUNetv2_train -pretrained_weights` (or `--c`) makes before training
starts, and reads the network's state as it is before the first step; the fine-tunes train through the command.
Fine-tuning runs go to their own nnUNet_results, so they never meet the models other tests train on Dataset901.
"""
import copy
import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.run.run_training import maybe_load_checkpoint
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from benchmarks import budget_trainers
from conftest import DS, raw, results, run
from helpers import nnunet_trainer, without_final_validation
from nnunet_distilldsm.from_2d import From2dError, convert

pytestmark = pytest.mark.slow  # trains, predicts or times networks (setup.cfg)

SEG = ".seg_layers."


@pytest.fixture(autouse=True)
def benchmark_trainers_found(monkeypatch):
    """from-2d finds trainers as nnU-Net does: the benchmark's short budgets through nnUNet_extTrainer."""
    from benchmarks.nnunet_commands import nnunet_environment
    monkeypatch.setenv("nnUNet_extTrainer", nnunet_environment({})["nnUNet_extTrainer"])


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                    b.reshape(-1).view(torch.uint8))


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def checkpoint_2d(stock_2d):
    return os.path.join(stock_2d[1], "fold_0", "checkpoint_final.pth")


def nnunet_start(env, trainer, weights=None):
    """`trainer`'s network and trainer as nnUNetv2_train starts them, before the first step: built by nnU-Net's
    get_trainer_from_args and maybe_load_checkpoint (what the command runs before run_training) in this process,
    from -pretrained_weights `weights`, or from the fold's checkpoint (--c) when `weights` is None."""
    with pytest.MonkeyPatch.context() as mp:
        t = nnunet_trainer(mp, env, 901, "2d", trainer, continue_training=weights is None)
        maybe_load_checkpoint(t, weights is None, False, weights)
    return t


def nnunet_starts_with(env, trainer, weights):
    """(state dict, plans) of `trainer`'s network as nnUNetv2_train -pretrained_weights `weights` starts it."""
    t = nnunet_start(env, trainer, weights)
    return {k: v.clone() for k, v in t.network.state_dict().items()}, t.plans_manager.plans


def nnunet_continues_with(env, trainer):
    """(state dict, epoch) of `trainer`'s network as nnUNetv2_train --c starts it."""
    t = nnunet_start(env, trainer)
    return {k: v.clone() for k, v in t.network.state_dict().items()}, t.current_epoch


def fine_tune_env(env, tmp_path):
    return dict(env, nnUNet_results=str(tmp_path / "results_fine_tune"))


@pytest.fixture(scope="module")
def distill_from_2d(stock_2d, tmp_path_factory):
    """The 2d model converted for DistillDSMTrainer_tiny through the command, what nnU-Net loads from it, and the
    fine-tuning run nnUNetv2_train -pretrained_weights makes of it."""
    env, _ = stock_2d
    tmp = tmp_path_factory.mktemp("from_2d")
    env = fine_tune_env(env, tmp)
    out = str(tmp / "out" / "distill.pth")
    cli = run(["nnunet-distilldsm", "from-2d", checkpoint_2d(stock_2d), "-tr", "DistillDSMTrainer_tiny", "-o", out],
              env)
    state, plans = nnunet_starts_with(env, "DistillDSMTrainer_tiny", out)
    train = run(["nnUNetv2_train", "901", "2d", "0", "-tr", "DistillDSMTrainer_tiny", "-pretrained_weights", out,
                 "-device", "cpu"], without_final_validation(env))
    return env, out, cli, state, plans, train


def check_start(ckpt_2d: dict, out: str, state: dict, trainer: str, widened=()) -> dict:
    """Asserts what the converted file holds and what nnU-Net starts training from; returns the file's weights."""
    w2d = ckpt_2d["network_weights"]
    saved = load(out)
    weights = saved["network_weights"]
    assert saved["trainer_name"] == trainer
    assert list(weights) == list(state)  # every key of the slab network nnU-Net builds for the trainer
    for k, v in w2d.items():
        if k in widened:
            continue
        assert bitwise_equal(weights[k], v), k  # in the file: the 2d tensor, bitwise (seg layers too)
        if SEG not in k:
            assert bitwise_equal(state[k], v), k  # in nnU-Net's network before the first step: the same
    # nnU-Net's loader skips the segmentation layers: they start from their initialisation
    assert not any(bitwise_equal(state[k], w2d[k]) for k in w2d if SEG in k and k.endswith("weight"))
    for k in weights:
        if k not in w2d:  # the modules: the file's initialisation, loaded as it is
            assert bitwise_equal(state[k], weights[k]), k
    return weights


def test_distill_dsm_starts_from_the_2d_weights_and_nnunet_trains_it(stock_2d, distill_from_2d):
    env, out, cli, state, plans, train = distill_from_2d
    ckpt_2d = load(checkpoint_2d(stock_2d))
    weights = check_start(ckpt_2d, out, state, "DistillDSMTrainer_tiny")
    modules = [k for k in weights if k not in ckpt_2d["network_weights"]]
    assert modules and all(".distill." in k for k in modules)
    assert "nnUNetv2_train Dataset901_DepthContext 2d 0 -tr DistillDSMTrainer_tiny -p nnUNetPlans" in cli.stdout
    # the modules are the trainer's own initialisation (seed 0): the file is reproducible
    pm = PlansManager(plans)
    torch.manual_seed(0)
    fresh = budget_trainers.find_trainer("DistillDSMTrainer_tiny").build_network_architecture(
        pm, pm.get_configuration("2d"), 1, 3, True).state_dict()
    assert all(bitwise_equal(fresh[k], weights[k]) for k in modules)
    assert any(weights[k].abs().sum() > 0 for k in modules if k.endswith("weight"))
    # the real command loaded the file and finished
    assert "Loading pretrained weights from file" in train.stdout
    final = load(os.path.join(results(env, "DistillDSMTrainer_tiny"), "fold_0", "checkpoint_final.pth"))
    assert final["trainer_name"] == "DistillDSMTrainer_tiny" and final["current_epoch"] == 2
    assert list(final["network_weights"]) == list(weights)


def test_keep_seg_layers_starts_the_fine_tune_with_every_2d_tensor_through_nnunet_continue(stock_2d, tmp_path):
    env = fine_tune_env(stock_2d[0], tmp_path)
    trainer = "DistillDSMTrainer_tiny"
    cli = run(["nnunet-distilldsm", "from-2d", checkpoint_2d(stock_2d), "-tr", trainer, "--keep-seg-layers"], env)
    fold_dir = os.path.join(results(env, trainer), "fold_0")
    written = os.path.join(fold_dir, "checkpoint_latest.pth")
    assert f"wrote {written}" in cli.stdout and f"-tr {trainer} -p nnUNetPlans --c" in cli.stdout
    assert sorted(f for f in os.listdir(fold_dir) if f.endswith((".pth", ".partial"))) == ["checkpoint_latest.pth"]
    w2d = load(checkpoint_2d(stock_2d))["network_weights"]
    state, epoch = nnunet_continues_with(env, trainer)
    assert epoch == 0  # --c starts the fine-tune at its first epoch
    assert any(SEG in k for k in w2d)
    for k, v in w2d.items():  # segmentation layers included, bitwise, before the first step
        assert bitwise_equal(state[k], v), k
    modules = [k for k in state if k not in w2d]
    assert modules and all(".distill." in k for k in modules)
    # the same modules as the -pretrained_weights file of the same seed
    convert(checkpoint_2d(stock_2d), str(tmp_path / "pretrained.pth"), trainer)
    pretrained = load(str(tmp_path / "pretrained.pth"))["network_weights"]
    assert all(bitwise_equal(state[k], pretrained[k]) for k in modules)
    # a second conversion would overwrite a training: refused, the file kept
    before = open(written, "rb").read()
    again = run(["nnunet-distilldsm", "from-2d", checkpoint_2d(stock_2d), "-tr", trainer, "--keep-seg-layers"], env,
                check=False)
    assert again.returncode == 1 and "already holds checkpoint_latest.pth" in again.stderr
    assert open(written, "rb").read() == before
    # the real command continues it to the end
    run(["nnUNetv2_train", "901", "2d", "0", "-tr", trainer, "--c", "-device", "cpu"], without_final_validation(env))
    final = load(os.path.join(fold_dir, "checkpoint_final.pth"))
    assert final["current_epoch"] == 2 and list(final["network_weights"]) == list(state)


def test_from_2d_needs_exactly_one_of_o_and_keep_seg_layers(stock_2d, tmp_path, capsys):
    """The command's argument check, in-process (the command path itself: the 3d_fullres refusal below)."""
    from nnunet_distilldsm.cli import main
    for extra in ([], ["-o", str(tmp_path / "x.pth"), "--keep-seg-layers"]):
        assert main(["from-2d", checkpoint_2d(stock_2d), *extra]) == 2  # the command's exit status
        assert "either -o FILE" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.pth")


def test_residual_dsm_file_is_the_2d_weights_and_nnunet_loads_it(stock_2d, tmp_path):
    env = fine_tune_env(stock_2d[0], tmp_path)
    out = str(tmp_path / "residual.pth")
    summary = convert(checkpoint_2d(stock_2d), out, "ResidualDSMTrainer_tiny")
    assert summary["initialised"] == []  # Residual DSM has no parameters
    state, _ = nnunet_starts_with(env, "ResidualDSMTrainer_tiny", out)
    ckpt_2d = load(checkpoint_2d(stock_2d))
    weights = check_start(ckpt_2d, out, state, "ResidualDSMTrainer_tiny")
    assert list(weights) == list(ckpt_2d["network_weights"])


def test_slices_as_channels_starts_with_exactly_the_2d_features(stock_2d, tmp_path):
    """First conv: the 2d weights on the centre slice's channel, zeros on the neighbours'. Then the network nnU-Net
    starts training computes the 2d network's features bitwise (measured; up to the segmentation layers)."""
    env = fine_tune_env(stock_2d[0], tmp_path)
    out = str(tmp_path / "sac.pth")
    summary = convert(checkpoint_2d(stock_2d), out, "SlicesAsChannelsTrainer_tiny")
    first = "encoder.stages.0.0.convs.0.conv.weight"
    assert first in summary["widened_first_conv"]
    state, plans = nnunet_starts_with(env, "SlicesAsChannelsTrainer_tiny", out)
    ckpt_2d = load(checkpoint_2d(stock_2d))
    check_start(ckpt_2d, out, state, "SlicesAsChannelsTrainer_tiny", widened=summary["widened_first_conv"])
    w2d = ckpt_2d["network_weights"][first]
    k = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["input_neighbours"]
    assert state[first].shape[1] == 2 * k + 1
    for o in range(2 * k + 1):
        assert bitwise_equal(state[first][:, o], w2d[:, 0] if o == k else torch.zeros_like(w2d[:, 0]))

    features = last_decoder_features(stock_2d, ckpt_2d, plans, state)
    assert features["2d"].shape == features["slab"].shape and features["2d"].abs().max() > 0
    assert bitwise_equal(features["slab"], features["2d"])


def last_decoder_features(stock_2d, ckpt_2d: dict, plans: dict, state: dict) -> dict:
    """{"2d": the 2d network's last decoder features on a test stack's slices, "slab": the slab network's (plans,
    state) on the stack}: what the segmentation layers see, before any training step."""
    env, folder = stock_2d
    pm2d = PlansManager(json.load(open(os.path.join(folder, "plans.json"))))
    net2d = nnUNetTrainer.build_network_architecture(pm2d, pm2d.get_configuration("2d"), 1, 3, False)
    net2d.load_state_dict(ckpt_2d["network_weights"])
    pm = PlansManager(plans)
    net = nnUNetTrainer.build_network_architecture(pm, pm.get_configuration("2d"), 1, 3, False)
    net.load_state_dict(state)
    features = {}
    for name, n in (("2d", net2d), ("slab", net)):
        n.eval()
        n.decoder.stages[-1].register_forward_hook(lambda m, i, o, name=name: features.__setitem__(name, o))
    case = sorted(os.listdir(raw(env, "imagesTs")))[0]
    image = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(raw(env, "imagesTs"), case))).astype(np.float32)
    x = torch.from_numpy((image - image.mean()) / image.std())  # (D, H, W)
    with torch.no_grad():
        net2d(x[:, None])  # slices as a batch of 2d images
        net(x[None, None])  # one stack
    return features


def test_identity_modules_start_distill_dsm_closer_to_the_2d_network(stock_2d, tmp_path):
    """--modules identity: every module's conv is dirac (zero bias), and the network's features start nearer the
    2d network's than with the modules as initialised (relative L2 distance; figures printed)."""
    env = fine_tune_env(stock_2d[0], tmp_path)
    ckpt_2d = load(checkpoint_2d(stock_2d))
    distance = {}
    for modules in ("initialised", "identity"):
        out = str(tmp_path / f"{modules}.pth")
        summary = convert(checkpoint_2d(stock_2d), out, "DistillDSMTrainer_tiny", modules=modules)
        assert summary["modules"] == modules
        state, plans = nnunet_starts_with(env, "DistillDSMTrainer_tiny", out)
        check_start(ckpt_2d, out, state, "DistillDSMTrainer_tiny")
        if modules == "identity":
            for k in summary["initialised"]:
                w = state[k]
                expected = torch.zeros_like(w) if k.endswith("bias") else torch.nn.init.dirac_(torch.empty_like(w))
                assert bitwise_equal(w, expected), k
        f = last_decoder_features(stock_2d, ckpt_2d, plans, state)
        distance[modules] = float((f["slab"] - f["2d"]).norm() / f["2d"].norm())
    print("relative distance of the start's features to the 2d network's:", distance)
    assert distance["identity"] < distance["initialised"]
    # the trainer variant asks for it without the option
    assert convert(checkpoint_2d(stock_2d), str(tmp_path / "v.pth"), "DistillDSMTrainer_identityStart")["modules"] \
        == "identity"


def test_identity_modules_need_distill_dsm_modules(stock_2d, tmp_path):
    with pytest.raises(From2dError, match="needs Distill DSM modules"):
        convert(checkpoint_2d(stock_2d), str(tmp_path / "r.pth"), "ResidualDSMTrainer_tiny", modules="identity")
    assert not os.path.exists(tmp_path / "r.pth")


@pytest.mark.parametrize("k", [1, 2])
def test_widened_first_conv_matches_slab_unet_channel_order_with_two_modalities(k):
    """Two modalities: SlabUNet orders its input modality-major; the widened weights must follow it."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    from nnunet_distilldsm.architectures import SlabUNet
    from nnunet_distilldsm.from_2d import widen_first_conv
    small = dict(n_stages=3, features_per_stage=[8, 16, 32], conv_op=torch.nn.Conv2d, kernel_sizes=[[3, 3]] * 3,
                 strides=[[1, 1], [2, 2], [2, 2]], n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[2, 2],
                 conv_bias=True, norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                 nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    torch.manual_seed(0)
    net2d = PlainConvUNet(input_channels=2, num_classes=3, deep_supervision=False, **small).eval()
    net = SlabUNet(2, 3, dsm="none", input_neighbours=k, **small).eval()
    shapes = {name: v.shape for name, v in net.state_dict().items()}
    weights = {name: v if v.shape == shapes[name] else widen_first_conv(v, 2, k)  # the first conv and its aliases
               for name, v in net2d.state_dict().items()}
    net.load_state_dict(weights)
    x = torch.randn(2, 2, 5, 16, 16)  # (B, modalities, D, H, W)
    with torch.no_grad():
        y2d = net2d(x.transpose(1, 2).reshape(10, 2, 16, 16))
        y = net(x)
    assert bitwise_equal(y.transpose(1, 2).reshape(10, 3, 16, 16), y2d)


def test_resenc_2d_model_converts(planned, tmp_path):
    """A ResidualEncoderUNet 2d model (nnU-Net's ResEnc M plans): a model folder made from a freshly built network."""
    env, _ = planned
    plans = json.load(open(os.path.join(env["nnUNet_preprocessed"], DS, "nnUNetResEncUNetMPlans.json")))
    pm = PlansManager(copy.deepcopy(plans))
    net = nnUNetTrainer.build_network_architecture(pm, pm.get_configuration("2d"), 1, 3, True)
    folder = tmp_path / "nnUNetTrainer__nnUNetResEncUNetMPlans__2d"
    os.makedirs(folder / "fold_0")
    json.dump(plans, open(folder / "plans.json", "w"))
    shutil.copy(os.path.join(env["nnUNet_preprocessed"], DS, "dataset.json"), folder / "dataset.json")
    w2d = net.state_dict()
    torch.save({"network_weights": w2d, "init_args": {"configuration": "2d", "fold": 0},
                "trainer_name": "nnUNetTrainer"}, folder / "fold_0" / "checkpoint_final.pth")
    summary = convert(str(folder / "fold_0" / "checkpoint_final.pth"), str(tmp_path / "out.pth"))
    weights = load(tmp_path / "out.pth")["network_weights"]
    assert summary["initialised"] and all(".distill." in k for k in summary["initialised"])
    assert all(bitwise_equal(weights[k], v) for k, v in w2d.items())
    assert any(k.startswith("encoder.stem.") for k in weights)


# ---- checkpoints that do not fit: a clear error, nothing written ----

def model_copy(stock_2d, tmp_path, checkpoint=None):
    """A copy of the stock 2d model folder (plans.json, dataset.json, fold_0/checkpoint_final.pth)."""
    folder = tmp_path / "nnUNetTrainer_tiny__nnUNetPlans__2d"
    os.makedirs(folder / "fold_0")
    for name in ("plans.json", "dataset.json"):
        shutil.copy(os.path.join(stock_2d[1], name), folder / name)
    shutil.copy(checkpoint or checkpoint_2d(stock_2d), folder / "fold_0" / "checkpoint_final.pth")
    return folder


def edit_json(path, edit):
    data = json.load(open(path))
    edit(data)
    json.dump(data, open(path, "w"))


def fewer_stages(plans):
    kw = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    kw["n_stages"] = 3
    for key in ("features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage"):
        kw[key] = kw[key][:3]
    kw["n_conv_per_stage_decoder"] = kw["n_conv_per_stage_decoder"][:2]


def other_features(plans):
    plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["features_per_stage"][1] = 48


def resenc_architecture(env):
    resenc = json.load(open(os.path.join(env["nnUNet_preprocessed"], DS, "nnUNetResEncUNetMPlans.json")))

    def edit(plans):
        plans["configurations"]["2d"]["architecture"] = resenc["configurations"]["2d"]["architecture"]
    return edit


MISMATCHES = {
    "stages": ("plans.json", fewer_stages, "stages: checkpoint 4, plans 3"),
    "features": ("plans.json", other_features,
                 "features per stage: checkpoint [32, 64, 128, 256], plans [32, 48, 128, 256]"),
    "input channels": ("dataset.json", lambda d: d["channel_names"].update({"1": "T2"}),
                       "input channels: checkpoint 1, plans 2"),
    "classes": ("dataset.json", lambda d: d["labels"].update({"extra": 3}), "classes: checkpoint 3, plans 4"),
    "architecture": ("plans.json", None, "architecture: checkpoint plain conv encoder (PlainConvUNet), plans "
                                         "residual encoder (encoder.stem: ResidualEncoderUNet)"),
}


def refused(checkpoint, out_dir, match):
    """Asserts that converting raises From2dError matching `match` and that nothing appears in out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    with pytest.raises(From2dError, match=match) as error:
        convert(str(checkpoint), os.path.join(out_dir, "out.pth"))
    assert os.listdir(out_dir) == []  # no output, no temporary file
    return str(error.value)


@pytest.mark.parametrize("what", list(MISMATCHES))
def test_checkpoint_of_other_dataset_or_plans_is_refused(stock_2d, tmp_path, what):
    """The checkpoint does not fit the plans.json / dataset.json of its folder: each difference is named."""
    file, edit, expected = MISMATCHES[what]
    folder = model_copy(stock_2d, tmp_path)
    edit_json(folder / file, edit or resenc_architecture(stock_2d[0]))
    message = refused(folder / "fold_0" / "checkpoint_final.pth", tmp_path / "out", "does not fit the plans.json")
    assert expected in message
    assert "Convert a checkpoint from the model folder it was trained in" in message


@pytest.fixture(scope="module")
def checkpoint_3d(stock_3d):
    """The session's stock nnUNetTrainer_tiny on 3d_fullres fold 0: its checkpoint."""
    return os.path.join(stock_3d[1], "fold_0", "checkpoint_final.pth")


def test_3d_fullres_checkpoint_is_refused_through_the_command(checkpoint_3d, stock_2d, tmp_path):
    out = tmp_path / "out"
    os.makedirs(out)
    proc = run(["nnunet-distilldsm", "from-2d", checkpoint_3d, "-o", str(out / "x.pth")], stock_2d[0], check=False,
               in_subprocess=True)  # the command path of `nnunet-distilldsm`, once
    assert proc.returncode == 1
    assert "From2dError: from-2d:" in proc.stderr and "is a '3d_fullres' checkpoint (patch [" in proc.stderr
    assert "3-D convolutions" in proc.stderr and "nnUNetv2_train DATASET 2d FOLD" in proc.stderr
    assert os.listdir(out) == []


def test_slab_checkpoints_are_refused(distill_from_2d, stock_2d, tmp_path):
    """A DistillDSMTrainer checkpoint, in its own folder and copied into a stock 2d model folder."""
    env = distill_from_2d[0]
    slab = os.path.join(results(env, "DistillDSMTrainer_tiny"), "fold_0", "checkpoint_final.pth")
    message = refused(slab, tmp_path / "out1", "was trained by DistillDSMTrainer_tiny, a slab trainer")
    assert "--c" in message
    in_2d_folder = model_copy(stock_2d, tmp_path, slab) / "fold_0" / "checkpoint_final.pth"
    refused(in_2d_folder, tmp_path / "out2", "was trained by DistillDSMTrainer_tiny, a slab trainer")


def test_not_a_model_folder_and_not_a_slab_trainer_are_refused(stock_2d, tmp_path):
    loose = tmp_path / "checkpoint_final.pth"
    shutil.copy(checkpoint_2d(stock_2d), loose)
    refused(loose, tmp_path / "out1", "is not inside an nnU-Net model folder")
    os.makedirs(tmp_path / "out3")
    with pytest.raises(From2dError, match="nnUNetTrainer is not a slab trainer"):
        convert(checkpoint_2d(stock_2d), str(tmp_path / "out3" / "x.pth"), "nnUNetTrainer")
    assert os.listdir(tmp_path / "out3") == []


def test_existing_output_is_kept_unless_forced(stock_2d, tmp_path):
    out = tmp_path / "out.pth"
    out.write_bytes(b"keep me")
    with pytest.raises(From2dError, match="exists; choose another -o or add --force"):
        convert(checkpoint_2d(stock_2d), str(out))
    assert out.read_bytes() == b"keep me"
    convert(checkpoint_2d(stock_2d), str(out), force=True)
    assert "network_weights" in load(out) and sorted(os.listdir(tmp_path)) == ["out.pth"]
