"""DC's evaluation augmentation: random crop, scale or rotation of each image.

Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching" (ICLR 2021) evaluate a
condensed MNIST set by training fresh networks on it with the augmentation
``crop_scale_rotate``: every image, independently, is translated, zoomed or rotated. Unlike
DSA (:mod:`distillkit.distill.augment`) it is applied only when training the evaluation
networks, never differentiated; the reference applies it image by image with scipy, here it
is one vectorised affine resampling (our reconstruction).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._validation import check_generator

__all__ = ["dc_augment"]


def dc_augment(x: torch.Tensor, generator=None) -> torch.Tensor:
    """DC's evaluation augmentation for MNIST (``crop_scale_rotate``), vectorised: each image
    gets one of a translation by up to 4 pixels, a zoom by a factor in [0.8, 1.2], or a
    rotation by an integer angle in [-45, 45) degrees, with the image mean as fill.

    This is our reconstruction of the reference's per-image scipy loop (bilinear instead of
    spline interpolation); it is not differentiable by design nor by need.

    Parameters
    ----------
    x : Tensor of shape (b, c, h, w)
    generator : torch.Generator, int or None

    Returns
    -------
    Tensor of shape (b, c, h, w)

    References
    ----------
    B. Zhao, K. R. Mopuri, H. Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021.

    Examples
    --------
    >>> dc_augment(torch.rand(3, 1, 28, 28), 0).shape
    torch.Size([3, 1, 28, 28])
    """
    func = "dc_augment"
    from .augment import _check_images  # augment imports this module

    x = _check_images(x, "x", func)
    gen = check_generator(generator, func)
    b, _, h, w = x.shape
    choice = torch.randint(3, (b,), generator=gen)  # 0 crop, 1 scale, 2 rotate
    shift = (torch.randint(8, (b, 2), generator=gen) - 4).to(x.dtype)  # pixels in [-4, 3]
    zoom = 1.0 + (torch.rand(b, 2, generator=gen) * 0.4 - 0.2)
    angle = torch.randint(-45, 45, (b,), generator=gen).to(torch.float64) * math.pi / 180.0
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    crop = choice == 0
    theta[crop, 0, 2] = 2.0 * shift[crop, 1].double() / w  # x (column) shift in normalised units
    theta[crop, 1, 2] = 2.0 * shift[crop, 0].double() / h
    scale = choice == 1
    theta[scale, 0, 0], theta[scale, 1, 1] = 1.0 / zoom[scale, 1].double(), 1.0 / zoom[scale, 0].double()
    rot = choice == 2
    c, s = torch.cos(angle[rot]), torch.sin(angle[rot])
    theta[rot, 0, 0], theta[rot, 0, 1], theta[rot, 1, 0], theta[rot, 1, 1] = c, -s, s, c
    theta = theta.to(x.device, x.dtype)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)  # per-channel fill value
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - mean, grid, align_corners=False) + mean
