"""Whole-stack inference: every in-plane tile sees the whole stack of slices at once.

nnU-Net's stock predictor tiles a slab model along depth like a 3-D model: overlapping
slabs, Gaussian-blended, where slices near a slab's ends see zeros instead of their
neighbours. The result then depends on the slab depth, and every slice is computed about
twice. A slab network's output slice i depends on input slices i-reach..i+reach only, so
`SlabUNet` can run a stack of any depth exactly in chunks with a halo of `reach` slices
(bounded memory). This predictor hands it whole stacks: tiles are in-plane only, blended
with nnU-Net's Gaussian; mirroring, preprocessing, export and ensembling stay nnU-Net's.
"""
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.utilities.helpers import dummy_context, empty_cache

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


class WholeStackPredictor(nnUNetPredictor):
    """nnUNetPredictor whose sliding window runs in-plane over whole stacks.

    chunk: output slices per network pass (each pass adds `reach` slices on both sides);
    None: the slices of one training batch (slab depth x batch size of the plans).
    """

    def __init__(self, *args, chunk: int = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunk = chunk

    def initialize_from_trained_model_folder(self, *args, **kwargs):
        super().initialize_from_trained_model_folder(*args, **kwargs)
        slab_network(self.network)  # a model that is not a slab model fails here, before anything is written

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        network = slab_network(self.network)
        depth, *tile = self.configuration_manager.patch_size
        network.inference_chunk = self.chunk or depth * self.configuration_manager.batch_size
        self.network = self.network.to(self.device)
        self.network.eval()
        results_device = self.device if self.perform_everything_on_device else torch.device("cpu")
        empty_cache(self.device)
        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            data, revert_padding = pad_nd_image(input_image, tile, "constant", {"value": 0}, True, None)
            steps = compute_steps_for_sliding_window(data.shape[2:], tile, self.tile_step_size)
            gaussian = compute_gaussian(tuple(tile), sigma_scale=1. / 8, value_scaling_factor=10,
                                        device=results_device) if self.use_gaussian else 1
            logits = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]), dtype=torch.half,
                                 device=results_device)
            weights = torch.zeros(data.shape[2:], dtype=torch.half, device=results_device)
            for sy in steps[0]:
                for sx in steps[1]:
                    window = (slice(sy, sy + tile[0]), slice(sx, sx + tile[1]))
                    x = data[(slice(None), slice(None), *window)][None].to(self.device)
                    prediction = self._internal_maybe_mirror_and_predict(x)[0].to(results_device)
                    logits[(slice(None), slice(None), *window)] += prediction * gaussian
                    weights[window] += gaussian
            logits /= weights
        empty_cache(self.device)
        return logits[(slice(None), *revert_padding[1:])]
