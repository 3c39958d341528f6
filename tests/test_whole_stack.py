"""`nnunet-distilldsm predict`: whole stacks at once, exact whatever the slab depth or chunk, nnU-Net's
safeguards kept (CPU fallback, inf check), and every file in OUT complete, even after a killed run."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch.nn import functional as F

from benchmarks.metrics import dice
from conftest import BIN, raw, results, run
from helpers import SMALL
from nnunet_distilldsm.architectures import SlabUNet
from nnunet_distilldsm.trainers.slab_plans import SLAB_NETWORK
from nnunet_distilldsm.whole_stack_predictor import WholeStackPredictor, slab_network

TRAINER = "DistillDSMTrainer_demo"


def predict_whole_stack(env, inp, out, trainer=TRAINER, extra=(), check=True, processes=1):
    """processes: nnU-Net's -npp and -nps (0: preprocessing and export in the command's own process)."""
    return run(["nnunet-distilldsm", "predict", "-i", inp, "-o", out, "-d", "901", "-tr", trainer, "-f", "0",
                "-device", "cpu", "-npp", str(processes), "-nps", str(processes), *extra], env, check=check)


def cases(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".nii.gz")) if os.path.isdir(folder) else []


def array(folder, case):
    return sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder, case)))


def small_predictor(predictor_class=WholeStackPredictor, slab_depth=6, **kwargs):
    """A WholeStackPredictor set up as nnU-Net's trainer sets one up for validation, on a small SlabUNet."""
    torch.manual_seed(0)
    net = SlabUNet(1, 2, deep_supervision=False, **SMALL)
    net.apply(net.initialize)
    architecture = {"network_class_name": SLAB_NETWORK, "arch_kwargs": {}, "_kw_requires_import": []}
    plans = PlansManager({"configurations": {"2d": {"patch_size": [slab_depth, 16, 16], "batch_size": 2,
                                                    "architecture": architecture}}})
    predictor = predictor_class(device=torch.device("cpu"), allow_tqdm=False, **kwargs)
    predictor.manual_initialization(net, plans, plans.get_configuration("2d"), [net.state_dict()],
                                    {"labels": {"background": 0, "object": 1}}, "DistillDSMTrainer", (1, 2))
    return predictor


class AttemptsRecorded(WholeStackPredictor):
    def _internal_predict_sliding_window_return_logits(self, data, slicers, do_on_device=True):
        self.attempts.append(do_on_device)
        return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)


class ResultsOutOfMemoryOnce(AttemptsRecorded):
    """Its first tile raises what CUDA raises after the pass, as moving or adding the pass's output into results
    arrays on a full device would."""

    def _stack_in_chunks(self, x, reach):
        out = super()._stack_in_chunks(x, reach)
        if len(self.attempts) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate ... (injected by the test)")
        return out


def test_out_of_memory_outside_a_pass_is_retried_with_results_on_the_cpu(capsys):
    x = torch.randn(1, 9, 24, 20)
    normal = small_predictor().predict_sliding_window_return_logits(x)
    predictor = small_predictor(ResultsOutOfMemoryOnce)
    predictor.attempts = []
    # what nnU-Net's predictor holds on CUDA (it turns it off for a CPU device); with it, nnU-Net's wrapper
    # tries with results on the device first
    predictor.perform_everything_on_device = True
    retried = predictor.predict_sliding_window_return_logits(x)
    assert predictor.attempts == [True, False]  # on the device, then again with results on the CPU
    said = capsys.readouterr().out
    assert "Prediction on device was unsuccessful" in said and "Whole-stack prediction" not in said  # nnU-Net's
    assert torch.equal(retried, normal)


class MemoryForSlices(torch.nn.Module):
    """The network on a device with memory for passes of `slices` slices: a larger pass raises `error`, as
    CUDA's and the CPU's allocators raise it."""

    def __init__(self, network, slices, error):
        super().__init__()
        self.module, self.slices, self.error, self.passes = network, slices, error, []

    def forward(self, x):
        self.passes.append(x.shape[2])
        if x.shape[2] > self.slices:
            raise self.error
        return self.module(x)


CUDA_OOM = torch.cuda.OutOfMemoryError("Tried to allocate 2.00 GiB (injected by the test)")  # told by its class
CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 4398046511104 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("error", [CUDA_OOM, CPU_OOM], ids=["cuda", "cpu"])
def test_a_pass_out_of_memory_is_run_again_in_smaller_chunks_with_the_same_result(error, capsys):
    x = torch.randn(1, 40, 24, 20)
    normal = small_predictor(use_mirroring=False).predict_sliding_window_return_logits(x)
    predictor = small_predictor(use_mirroring=False)
    assert slab_network(predictor.network).reach == 4  # so the whole stack, 40 slices, is one pass by default
    predictor.network = MemoryForSlices(predictor.network, slices=20, error=error)
    chunked = predictor.predict_sliding_window_return_logits(x)
    # the whole stack fails; then chunks of (40 - 2 x 4) // 2 = 16 output slices: the first pass (16 + 4 slices of
    # halo above) runs, the second (4 + 16 + 4) fails; then chunks of (24 - 8) // 2 = 8, every pass at most 16
    # slices, kept for the other three of the 2 x 2 in-plane tiles
    assert predictor.network.passes == [40, 20, 24] + [12, 16, 16, 16, 12] * 4
    assert predictor.chunk == 8
    said = capsys.readouterr().out
    assert "trying again with 8 output slices per pass (--chunk 8), the result does not change\n" in said
    assert "may be faster" not in said  # passes of 16 for 8 slices: each computed twice, as nnU-Net's slabs do
    assert torch.allclose(chunked.float(), normal.float(), atol=2e-3)
    assert torch.equal(chunked.argmax(0), normal.argmax(0))


def test_out_of_memory_at_the_fewest_slices_names_the_command_that_needs_less(capsys):
    predictor = small_predictor(AttemptsRecorded, use_mirroring=False)
    predictor.attempts = []
    reach = slab_network(predictor.network).reach
    predictor.network = MemoryForSlices(predictor.network, slices=2 * reach, error=CUDA_OOM)
    predictor.perform_everything_on_device = True  # nnU-Net's retry with results on the CPU would be possible
    with pytest.raises(MemoryError, match=f"passes of {2 * reach + 1} slices, which cannot be made smaller.*Predict "
                                          f"this model with nnUNetv2_predict.*torch said: Tried to allocate"):
        predictor.predict_sliding_window_return_logits(torch.randn(1, 40, 16, 16))
    assert predictor.attempts == [True]  # not again with results on the CPU: the same passes would run
    # on the way down, from chunks of (16 - 8) // 2 = 4 on: each slice computed (4 + 8) / 4 = 3 times
    assert "(--chunk 4), the result does not change; each slice is now computed 3.0 times, so nnUNetv2_predict " \
           "may be faster" in capsys.readouterr().out


def test_an_error_other_than_out_of_memory_is_not_retried():
    predictor = small_predictor(use_mirroring=False)
    predictor.network = MemoryForSlices(predictor.network, slices=0, error=RuntimeError("cuDNN error: BAD_PARAM"))
    with pytest.raises(RuntimeError, match="BAD_PARAM"):
        predictor.predict_sliding_window_return_logits(torch.randn(1, 40, 16, 16))
    assert predictor.network.passes == [40]


def test_inf_logits_raise_instead_of_passing_silently():
    predictor = small_predictor()
    x = torch.randn(1, 5, 16, 16)
    assert torch.isfinite(predictor.predict_sliding_window_return_logits(x)).all()
    with torch.no_grad():
        for p in slab_network(predictor.network).decoder.seg_layers.parameters():
            p.mul_(1e6)  # logits beyond half precision's range, where they are summed
    with pytest.raises(RuntimeError, match="Encountered inf in predicted array"):
        predictor.predict_sliding_window_return_logits(x)


def test_a_stack_shallower_than_the_slab_is_predicted_as_it_is_not_padded():
    # no Gaussian, no mirroring, one tile: the logits are the network's output on the stack, in half precision
    predictor = small_predictor(slab_depth=6, use_gaussian=False, use_mirroring=False)
    x = torch.randn(1, 3, 16, 16)  # nnU-Net's wrapper pads it to the slab's 6 slices: 1 below, 2 above
    logits = predictor.predict_sliding_window_return_logits(x)
    net = slab_network(predictor.network)
    with torch.no_grad():
        alone = net(x[None])[0]
        padded = net(F.pad(x, (0, 0, 0, 0, 1, 2))[None])[0][:, 1:4]
    assert logits.shape == (2, 3, 16, 16)
    assert torch.equal(logits, alone.half())
    assert not torch.allclose(padded, alone, atol=1e-2)  # the zero slices would have changed it


@pytest.mark.slow
def test_whole_stack_predictions_do_not_depend_on_slab_depth_or_chunk(trained, tmp_path):
    env, out_stock = trained
    out = str(tmp_path / "whole")
    predict_whole_stack(env, raw(env, "imagesTs"), out, extra=["--save_probabilities"])
    # the same model with plans.json's slab depth doubled (as in the stock-predictor test), and with chunks
    # of 2 slices plus the halo; both without worker processes (-npp 0 -nps 0), which changes nothing either
    env2 = dict(env, nnUNet_results=str(tmp_path / "res"))
    shutil.copytree(results(env, TRAINER), results(env2, TRAINER))
    plans_file = os.path.join(results(env2, TRAINER), "plans.json")
    plans = json.load(open(plans_file))
    plans["configurations"]["2d"]["patch_size"][0] *= 2
    json.dump(plans, open(plans_file, "w"))
    out_deeper, out_chunks = str(tmp_path / "deeper"), str(tmp_path / "chunks")
    predict_whole_stack(env2, raw(env, "imagesTs"), out_deeper, extra=["--save_probabilities"], processes=0)
    predict_whole_stack(env, raw(env, "imagesTs"), out_chunks, extra=["--save_probabilities", "--chunk", "2"],
                        processes=0)
    assert cases(out) == cases(out_stock) == cases(raw(env, "labelsTs"))
    assert not os.path.exists(os.path.join(out, ".incomplete"))
    for case in cases(out):
        seg = array(out, case)
        img = sitk.ReadImage(os.path.join(raw(env, "imagesTs"), case.replace(".nii.gz", "_0000.nii.gz")))
        assert seg.shape == sitk.GetArrayFromImage(img).shape
        probs = np.load(os.path.join(out, case.replace(".nii.gz", ".npz")))["probabilities"]
        for other in (out_deeper, out_chunks):
            assert np.array_equal(array(other, case), seg)
            other_probs = np.load(os.path.join(other, case.replace(".nii.gz", ".npz")))["probabilities"]
            # logits are summed in half precision (as nnU-Net's predictor does): last-bit differences of
            # the convolutions on other batch sizes round differently; seen: 2 of 76800 values off by 3.4e-4
            np.testing.assert_allclose(other_probs, probs, atol=2e-3)
        # the same model through nnU-Net's stock slab predictor: close, not equal (slab ends see zeros there)
        ref = array(raw(env, "labelsTs"), case)
        assert dice(seg > 0, ref > 0, True) >= 0.75
        assert (seg == array(out_stock, case)).mean() >= 0.99


@pytest.mark.slow
def test_killed_prediction_keeps_the_finished_cases_and_continues_with_the_rest(trained, tmp_path):
    env, _ = trained
    inp, out = tmp_path / "many", tmp_path / "out"
    inp.mkdir()
    for k in range(4):  # enough cases that the run is still busy when the first one is written
        for f in os.listdir(raw(env, "imagesTs")):
            shutil.copy(os.path.join(raw(env, "imagesTs"), f), inp / f"c{k}{f}")
    n_cases = len(os.listdir(inp))
    cmd = [os.path.join(BIN, "nnunet-distilldsm"), "predict", "-i", str(inp), "-o", str(out), "-d", "901", "-tr",
           TRAINER, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1", "--save_probabilities"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not cases(out):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    kept = cases(out)
    assert 1 <= len(kept) < n_cases
    written = {}
    for case in kept:  # a case in OUT is complete: all its files, each readable
        stem = case[:-len(".nii.gz")]
        for name in (case, stem + ".npz", stem + ".pkl"):
            st = (out / name).stat()
            written[name] = (st.st_ino, st.st_mtime_ns)
        assert np.load(out / f"{stem}.npz")["probabilities"].shape[1:] == array(out, case).shape
        assert pickle.load(open(out / f"{stem}.pkl", "rb"))["spacing"]
    staging = out / ".incomplete"
    proc = predict_whole_stack(env, str(inp), str(out), extra=["--continue_prediction", "--save_probabilities"])
    assert f"{n_cases - len(kept)} cases to predict" in proc.stdout
    assert len(cases(out)) == n_cases and not staging.exists()
    for name, (inode, mtime) in written.items():  # what the killed run finished was not predicted again
        st = (out / name).stat()
        assert (st.st_ino, st.st_mtime_ns) == (inode, mtime), name
    for case in cases(out):  # copies of an image: one segmentation, finished before the kill or after it
        assert np.array_equal(array(out, case), array(out, "c0" + case[2:]))
        assert all(os.path.isfile(out / case.replace(".nii.gz", e)) for e in (".npz", ".pkl"))
    proc = predict_whole_stack(env, str(inp), str(out), extra=["--continue_prediction", "--save_probabilities"])
    assert "0 cases to predict" in proc.stdout


@pytest.mark.slow
def test_whole_stack_prediction_of_a_stock_2d_model_names_the_command_to_use(stock_2d, tmp_path):
    env, _ = stock_2d
    out = tmp_path / "out"
    proc = predict_whole_stack(env, raw(env, "imagesTs"), str(out), trainer="nnUNetTrainer_tiny", check=False)
    assert proc.returncode != 0
    assert "needs a model trained with a slab trainer" in proc.stderr and "nnUNetv2_predict" in proc.stderr
    assert cases(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("folder_of,checkpoint_of,message", [
    (TRAINER, "nnUNetTrainer_tiny", "these weights do not fit"),  # SlabUNet.load_state_dict
    # DistillDSMTrainer.build_network_architecture:
    ("nnUNetTrainer_tiny", TRAINER, "mixes files of different trainings"),
])
def test_checkpoint_of_another_training_in_a_model_folder_is_refused_with_the_fix(trained, stock_2d, tmp_path,
                                                                                  folder_of, checkpoint_of, message):
    env, _ = stock_2d
    env2 = dict(env, nnUNet_results=str(tmp_path / "res"))
    shutil.copytree(results(env, folder_of), results(env2, folder_of))
    shutil.copy(os.path.join(results(env, checkpoint_of), "fold_0", "checkpoint_final.pth"),
                os.path.join(results(env2, folder_of), "fold_0", "checkpoint_final.pth"))
    out = tmp_path / "out"
    with_error = run(["nnUNetv2_predict", "-i", raw(env, "imagesTs"), "-o", str(out), "-d", "901", "-c", "2d", "-tr",
                      folder_of, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"], env2, check=False)
    assert with_error.returncode != 0
    assert message in with_error.stderr and "predict with" in with_error.stderr.lower()
    assert cases(out) == []
