"""Whole-stack inference: every in-plane tile sees the whole stack of slices at once.

nnU-Net's stock predictor tiles a slab model along depth like a 3-D model: overlapping
slabs, Gaussian-blended, where slices near a slab's ends see zeros instead of their
neighbours. The result then depends on the slab depth, and every slice is computed about
twice. A slab network's output slice i depends on input slices i-reach..i+reach only, so a
stack of any depth runs exactly in chunks with a halo of `reach` slices (`in_chunks`, bounded
memory). This predictor hands it whole stacks.

What is nnU-Net's and what is ours:

- nnU-Net's, unchanged: `predict_sliding_window_return_logits` (network to the device, eval
  mode, autocast on CUDA, padding to the patch size, and the retry with the results arrays
  on the CPU when the attempt on the device raises, e.g. out of memory), mirroring
  (`_internal_maybe_mirror_and_predict`), fold ensembling, preprocessing and export.
- ours, replacing the two methods that wrapper calls: `_internal_get_sliding_window_slicers`
  (in-plane tiles, each over all of the stack's slices; slices nnU-Net's padding added
  below and above a stack shallower than the slab are left out, so the network sees the
  stack as it is) and `_internal_predict_sliding_window_return_logits`, a re-implementation
  of nnU-Net's method of that name for such tiles: logits summed in half precision with an
  in-plane Gaussian (nnU-Net's `compute_gaussian`) and divided by the summed weights, the
  same error on inf logits, the same freeing of device memory on failure. nnU-Net's own
  cannot be reused: its Gaussian and weights have the slab's [D, H, W] shape.

A pass holds the feature maps of all its slices at once, so when the device runs out of memory
in a pass, the chunk is halved and the pass tried again (`_stack_in_chunks`; the result does
not depend on the chunk); running out elsewhere (the results arrays) goes to nnU-Net's retry
with them on the CPU.
"""
from typing import Callable, List, Optional, Tuple

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.utilities.helpers import empty_cache

from nnunet_distilldsm.architectures.slab_unet import SlabUNet


def slab_network(network: torch.nn.Module) -> SlabUNet:
    """The SlabUNet inside a possibly compiled or DDP-wrapped network."""
    for attr in ("_orig_mod", "module"):
        network = getattr(network, attr, network)
    if not isinstance(network, SlabUNet):
        raise TypeError(f"whole-stack prediction needs a model trained with a slab trainer (DistillDSMTrainer, "
                        f"ResidualDSMTrainer, ...); this model's network is {type(network).__name__}. Predict it "
                        f"with nnUNetv2_predict instead")
    return network


def in_chunks(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int,
              reach: int) -> torch.Tensor:
    """predict(x) for a (B, C, D, H, W) stack, run on `chunk` output slices at a time, each with `reach` slices of
    halo on both sides: exact when output slice i depends on input slices i-reach..i+reach only."""
    depth = x.shape[2]
    if depth <= chunk + 2 * reach:
        return predict(x)
    outs = []
    for start in range(0, depth, chunk):
        stop = min(start + chunk, depth)
        lo, hi = max(0, start - reach), min(depth, stop + reach)
        outs.append(predict(x[:, :, lo:hi])[:, :, start - lo:stop - lo])
    return torch.cat(outs, dim=2)


def default_chunk(training_slices: int, reach: int) -> int:
    """Output slices per network pass: a training batch's slices, or 8 x reach where that is more, so that the
    halo (2 x reach slices computed again by the next pass) is at most a fifth of a pass. With a module after
    every conv, reach is about the network's number of convs, which on large slices (many stages) can exceed a
    slab: chunks of a training batch would then compute each slice several times. An inference pass keeps no
    activations for backward, so a chunk a few times a training batch's slices fits where training fits."""
    return max(training_slices, 8 * reach)


def out_of_memory(error: BaseException) -> bool:
    """What torch raises when an allocation fails: CUDA's OutOfMemoryError, or the CPU and MPS allocators'
    RuntimeError. (On the CPU the operating system may kill the process instead: then lower --chunk.)"""
    return isinstance(error, torch.cuda.OutOfMemoryError) or any(
        text in str(error) for text in ("can't allocate memory", "out of memory"))


class WholeStackPredictor(nnUNetPredictor):
    """nnUNetPredictor whose sliding window runs in-plane over whole stacks.

    chunk: output slices per network pass (each pass adds `reach` slices on both sides);
    None: `default_chunk`.
    """

    def __init__(self, *args, chunk: int = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunk = chunk
        self._stack_depth: Optional[int] = None  # slices of the image being predicted, before nnU-Net's padding

    def initialize_from_trained_model_folder(self, *args, **kwargs):
        super().initialize_from_trained_model_folder(*args, **kwargs)
        slab_network(self.network)  # a model that is not a slab model fails here, before anything is written

    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        """nnU-Net's (with its CPU fallback); remembers the stack's depth for the slicers."""
        self._stack_depth = input_image.shape[1]
        try:
            return super().predict_sliding_window_return_logits(input_image)
        finally:
            self._stack_depth = None

    def _internal_get_sliding_window_slicers(self, image_size: Tuple[int, ...]) -> List[tuple]:
        """In-plane tiles of the patch's [H, W], each over every slice of the stack.

        image_size is (D, H, W) after nnU-Net's padding to the patch: a stack of fewer slices than the
        slab got zero slices on both sides (pad_nd_image: half below, the rest above); they stay out."""
        depth = self._stack_depth if self._stack_depth is not None else image_size[0]
        below = (image_size[0] - depth) // 2
        tile = self.configuration_manager.patch_size[1:]
        steps = compute_steps_for_sliding_window(image_size[1:], tile, self.tile_step_size)
        return [(slice(None), slice(below, below + depth), slice(sy, sy + tile[0]), slice(sx, sx + tile[1]))
                for sy in steps[0] for sx in steps[1]]

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers,
                                                       do_on_device: bool = True) -> torch.Tensor:
        reach = slab_network(self.network).reach
        depth, *tile = self.configuration_manager.patch_size
        self.chunk = self.chunk or default_chunk(depth * self.configuration_manager.batch_size, reach)
        results_device = self.device if do_on_device else torch.device("cpu")
        logits = weights = prediction = gaussian = None
        try:
            empty_cache(self.device)
            data = data.to(results_device)
            gaussian = compute_gaussian(tuple(tile), sigma_scale=1. / 8, value_scaling_factor=10,
                                        device=results_device) if self.use_gaussian else 1
            logits = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]), dtype=torch.half,
                                 device=results_device)
            weights = torch.zeros(data.shape[2:], dtype=torch.half, device=results_device)
            for sl in slicers:
                # mirroring flips H and W only (the slab trainers' axes), so it commutes with chunks along D
                prediction = None  # the last tile's, freed before this pass
                prediction = self._stack_in_chunks(data[sl][None].to(self.device), reach)[0]
                prediction = prediction.to(results_device)
                if self.use_gaussian:
                    prediction *= gaussian
                logits[sl] += prediction
                weights[sl[2:]] += gaussian
            torch.div(logits, weights, out=logits)  # padded slices, never predicted, stay 0 (cropped by the caller)
            if torch.any(torch.isinf(logits)):
                raise RuntimeError("Encountered inf in predicted array. Aborting... If this problem persists, "
                                   "reduce value_scaling_factor in compute_gaussian or increase the dtype of "
                                   "predicted_logits to fp32")  # nnU-Net's check and message
            return logits
        except Exception:
            del logits, weights, prediction, gaussian
            empty_cache(self.device)
            empty_cache(results_device)
            raise

    def _stack_in_chunks(self, x: torch.Tensor, reach: int) -> torch.Tensor:
        """in_chunks with self.chunk; when a pass runs out of memory, again with half the output slices of the
        largest pass, and that chunk is kept for the rest of the run. A pass has at least 2 x reach + 1 slices:
        out of memory there, MemoryError, which nnU-Net's retry (results on the CPU, after a RuntimeError) lets
        through, as that retry would run the same passes, each slice computed 2 x reach + 1 times."""
        depth = x.shape[2]
        while True:
            passed = min(depth, self.chunk + 2 * reach)  # slices of the largest pass in_chunks makes
            try:
                return in_chunks(self._internal_maybe_mirror_and_predict, x, self.chunk, reach)
            except RuntimeError as e:
                if not out_of_memory(e):
                    raise
                said = str(e).splitlines()[0]
            # out of the except clause: the failed pass's tensors, held by its traceback, are freed
            empty_cache(self.device)
            if passed <= 2 * reach + 1:
                raise MemoryError(
                    f"Whole-stack prediction ran out of memory on {self.device} with passes of {passed} slices, "
                    f"which cannot be made smaller (an output slice depends on {reach} slices each side). Predict "
                    f"this model with nnUNetv2_predict (nnU-Net's sliding window over slabs, which needs less "
                    f"memory), or on a device with more memory. torch said: {said}")
            self.chunk = max(1, (passed - 2 * reach) // 2)
            computed = (self.chunk + 2 * reach) / self.chunk  # times each slice is computed; nnU-Net's slabs: ~2
            print(f"Whole-stack prediction: out of memory with passes of up to {passed} slices; trying again with "
                  f"{self.chunk} output slices per pass (--chunk {self.chunk}), the result does not change"
                  + (f"; each slice is now computed {computed:.1f} times, so nnUNetv2_predict may be faster"
                     if computed > 2 else ""))
