"""The ConvNet of the dataset-distillation literature ("ConvNet-3").

Gidaris & Komodakis (2018) introduced it; Zhao, Mopuri & Bilen, "Dataset Condensation with
Gradient Matching" (ICLR 2021) made it the standard model for DC, DSA, DM and MTT.

Each of ``depth`` blocks is ``Conv2d(k=3) -> norm -> ReLU -> AvgPool2d(2)``, followed by one
linear classifier. "Instance norm" is ``GroupNorm(C, C, affine=True)``: one group per channel.
28x28 inputs (MNIST, Fashion-MNIST) are padded to 32x32 by the first convolution
(``padding=3``), so the classifier sees 128*4*4 = 2048 features. On 1x28x28 inputs with 10
classes the default network has exactly 317,706 parameters.

Difference from the reference code (``ConvNet`` in ``networks.py`` of
VICO-UoE/DatasetCondensation, built by ``utils.get_network``): the reference pads the first
convolution by 3 when the input has **one channel** (``channel == 1``), whatever its size,
and sizes its classifier as if every 28-pixel input became 32 pixels. Here the first
convolution pads by 3 when the input is **28 pixels** (``im_size == 28``), whatever its
channels, and every other convolution by 1. The two networks are the same layer for layer
(and give the same outputs from the same weights) when the input is 1x28x28 (MNIST,
Fashion-MNIST) or has several channels and is not 28 pixels (CIFAR's 3x32x32). They differ
on one-channel inputs of another size (the 1x8x8 digits: the reference pads them to 12x12,
this ConvNet keeps 8x8) and on several-channel 28-pixel inputs (3x28x28 coloured MNIST: the
reference's classifier does not match its features, this ConvNet pads to 32x32). The book's
stored outputs (digits chapters) depend on this choice, so it is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_int, check_option
from ._input import check_input
from .init import _init_parameters

__all__ = ["ConvNet"]

_NORMS = ("instance", "batch", "none")


class ConvNet(nn.Module):
    """ConvNet-``depth`` of width ``width``.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    n_classes : int
        Number of classes.
    im_size : int
        Height (= width) of the inputs. 28 is padded to 32 by the first convolution (the
        reference code pads one-channel inputs instead: see the module docstring).
    width, depth : int
        Channels per block and number of blocks (128 and 3 in the papers).
    norm : {"instance", "batch", "none"}
        Normalisation after each convolution: instance norm (the distillation papers' default),
        batch norm, or none.
    generator : torch.Generator, int or None
        Source of the initial weights.

    Examples
    --------
    >>> net = ConvNet(1, 10, im_size=28, generator=0)
    >>> sum(p.numel() for p in net.parameters())
    317706
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        *,
        im_size: int = 28,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        generator=None,
    ):
        super().__init__()
        from .._validation import check_generator

        in_channels = check_int(in_channels, "in_channels", "ConvNet", low=1)
        n_classes = check_int(n_classes, "n_classes", "ConvNet", low=1)
        im_size = check_int(im_size, "im_size", "ConvNet", low=1)
        width = check_int(width, "width", "ConvNet", low=1)
        depth = check_int(depth, "depth", "ConvNet", low=1)
        norm = check_option(norm, "norm", "ConvNet", _NORMS)
        gen = check_generator(generator, "ConvNet")

        self.in_channels, self.im_size = in_channels, im_size
        layers: list[nn.Module] = []
        size, channels = im_size, in_channels
        # layers draw their default init from the global RNG: fork it so the caller's
        # global state is left exactly as it was, then re-initialise from `generator`.
        with torch.random.fork_rng(devices=[]):
            self._build(layers, depth, width, norm, size, channels, n_classes)
        _init_parameters(self, gen)

    def _build(self, layers, depth, width, norm, size, channels, n_classes):
        im_size = size
        for block in range(depth):
            pad = 3 if (block == 0 and im_size == 28) else 1
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=pad))
            size = size + 2 * pad - 2
            if norm == "instance":
                layers.append(nn.GroupNorm(width, width, affine=True))
            elif norm == "batch":
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if size >= 2:
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
                size //= 2
            channels = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (n, feature_dim)."""
        x = check_input(self, x, "ConvNet.forward")
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-1] != self.im_size or x.shape[-2] != self.im_size:
            raise ValueError(
                f"The 'x' parameter of ConvNet.forward must be a tensor of shape (n, {self.in_channels}, "
                f"{self.im_size}, {self.im_size}). Got a tensor of shape {tuple(x.shape)} instead."
            )
        return self.features(x).flatten(1)  # (n, C, h, w) -> (n, C*h*w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
