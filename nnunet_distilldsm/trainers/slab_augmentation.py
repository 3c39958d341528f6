"""nnU-Net's training transforms, made to treat a slab as nnU-Net 2d treats a slice.

nnU-Net's list is kept, transform for transform (docs/reference.md has the table). One of them acts across
slices where it should not: GaussianBlurTransform blurs every spatial axis of a [D, H, W] patch, mixing
neighbouring slices, and its reflect padding along D crashes the augmentation workers when a slab has fewer
slices than the padding (1-3-slice slabs). `InPlaneGaussianBlur` blurs H and W only, with one sigma per axis
for the whole slab, as nnU-Net 2d blurs a slice.
"""
import numpy as np
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform, blur_dimension
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform


class InPlaneGaussianBlur(GaussianBlurTransform):
    """nnU-Net's Gaussian blur of a (C, D, H, W) slab along H and W only: each channel's slices are blurred with
    the same sigmas, drawn as nnU-Net draws them for a (C, H, W) slice."""

    def get_parameters(self, **data_dict) -> dict:
        return super().get_parameters(image=data_dict["image"][:, 0])

    def _apply_to_image(self, img, **params):
        for j, channel in enumerate(np.where(params["apply_to_channel"])[0]):
            sigmas = params["sigmas"] if self.synchronize_channels else params["sigmas"][j]
            slab = img[channel]  # (D, H, W): its slices as the channels of one 2-D image
            for axis, sigma in enumerate(sigmas):
                slab = blur_dimension(slab, sigma, axis)
            img[channel] = slab
        return img


def in_plane(blur: GaussianBlurTransform) -> InPlaneGaussianBlur:
    """`blur`'s settings in an InPlaneGaussianBlur."""
    return InPlaneGaussianBlur(blur.blur_sigma, blur.synchronize_channels, blur.synchronize_axes,
                               blur.p_per_channel, benchmark=False)


def slab_transforms(transforms: ComposeTransforms) -> ComposeTransforms:
    """nnU-Net's training transforms with every Gaussian blur made in-plane; everything else as it is."""
    for i, t in enumerate(transforms.transforms):
        if isinstance(t, RandomTransform) and isinstance(t.transform, GaussianBlurTransform):
            t.transform = in_plane(t.transform)
        elif isinstance(t, GaussianBlurTransform):
            transforms.transforms[i] = in_plane(t)
    return transforms
