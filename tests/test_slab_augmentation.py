"""Slabs are augmented as nnU-Net 2d augments a slice: the blur stays in-plane at any slab depth."""
import pytest
import torch
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform, blur_dimension
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from nnunet_distilldsm.trainers import DistillDSMTrainer
from nnunet_distilldsm.trainers.slab_augmentation import InPlaneGaussianBlur


@pytest.mark.parametrize("depth", [1, 2, 3, 7])
def test_blur_keeps_slices_apart(depth):
    """Each slice comes out as the 2-D blur of that slice alone, with one sigma pair for the whole slab."""
    torch.manual_seed(depth)
    image = torch.zeros(2, depth, 24, 20)
    image[:, :, 12, 10] = torch.arange(1, depth + 1, dtype=torch.float32)  # one bright voxel a slice, its own value
    blur = InPlaneGaussianBlur(blur_sigma=(0.5, 1.0), p_per_channel=1)
    params = blur.get_parameters(image=image)
    out = blur._apply_to_image(image.clone(), **params)
    for c in range(2):
        sigma_y, sigma_x = params["sigmas"][c]
        expected = blur_dimension(blur_dimension(image[c], sigma_y, 0), sigma_x, 1)  # slices as channels: 2-D
        torch.testing.assert_close(out[c], expected)
        assert out[c].sum(dim=(1, 2)).tolist() == pytest.approx(list(range(1, depth + 1)), rel=1e-4)


def test_trainer_transforms_blur_in_plane():
    """The slab trainers' training transforms hold no blur that reaches across slices."""
    transforms = DistillDSMTrainer.get_training_transforms(
        (3, 32, 32), (-3.14, 3.14), None, (1, 2), True)
    blurs = [t.transform for t in transforms.transforms
             if isinstance(t, RandomTransform) and isinstance(t.transform, GaussianBlurTransform)]
    assert blurs and all(isinstance(b, InPlaneGaussianBlur) for b in blurs)
    for depth in (1, 2, 3):  # nnU-Net's own transform list, run on slabs of 1-3 slices: no crash, shapes kept
        for _ in range(20):
            out = transforms(image=torch.randn(1, depth, 32, 32), segmentation=torch.zeros(1, depth, 32, 32))
            assert out["image"].shape == (1, depth, 32, 32)
