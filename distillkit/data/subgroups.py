"""Digit images with a known rare subgroup, and the shifted test sets of the robustness chapter.

Coloured digits: an exact ``minority_fraction`` of every class is painted in a rare colour.
Two designs, in the spirit of Colored MNIST (Arjovsky et al., 2019):

* ``spurious=False`` (a rare style): every class is painted in ``PALETTE[0]`` (red) except its
  minority, painted in ``PALETTE[shift]`` (green for ``shift=1``). Colour says nothing about
  the label, but a network that saw only red digits has never used the green channel.
* ``spurious=True``: the majority of class ``c`` is painted in ``PALETTE[c]`` and its minority in
  ``PALETTE[c + shift]``, so colour predicts the label for the majority and points to the
  wrong class for the minority.

Subgroup ids are ``2 * class + is_minority``.

Shifts (the domain-shifted test sets built by the released code of Vahidian et al., ICLR 2025):
Gaussian noise of variance 0.005 on [0, 1] pixels, clipped; Gaussian blur of radius 2 (our
reconstruction of PIL's ``GaussianBlur(2)`` as a sampled Gaussian kernel with standard deviation
2, truncated at 3 standard deviations, edges replicated); colour inversion ``1 - x``.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_int, check_tensor, check_xy, fail

__all__ = ["PALETTE", "color_digits", "load_colored_mnist", "gaussian_noise", "gaussian_blur", "invert",
           "shifted_test_sets"]

PALETTE = torch.tensor([
    [1.00, 0.10, 0.10], [0.10, 0.80, 0.10], [0.15, 0.35, 1.00], [1.00, 0.85, 0.10], [0.90, 0.10, 0.90],
    [0.10, 0.90, 0.90], [1.00, 0.55, 0.10], [0.60, 0.30, 1.00], [0.55, 0.90, 0.45], [1.00, 1.00, 1.00],
])
"""Tensor of shape (10, 3): the RGB colour of each class's majority."""


def color_digits(x: torch.Tensor, y: torch.Tensor, *, minority_fraction: float = 0.05, shift: int = 1,
                 spurious: bool = False, generator=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paint grey-scale digits, an exact minority of every class in a rare colour.

    Parameters
    ----------
    x : Tensor of shape (n, 1, h, w)
        Grey-scale images in [0, 1] (digits or MNIST).
    y : Tensor of shape (n,), int64
        Labels in [0, 10).
    minority_fraction : float
        Fraction of every class painted in the minority colour, in [0, 1]. Class ``c`` gets
        exactly ``floor(minority_fraction * n_c + 0.5)`` minority examples.
    shift : int
        The minority colour is ``PALETTE[shift]`` (``spurious=False``) or, for class ``c``,
        ``PALETTE[(c + shift) % 10]`` (``spurious=True``).
    spurious : bool
        Majority colour ``PALETTE[0]`` for every class (False) or ``PALETTE[c]`` for class ``c``.
    generator : torch.Generator, int or None
        Chooses which examples form the minority.

    Returns
    -------
    x : Tensor of shape (n, 3, h, w), float32 in [0, 1]
    y : Tensor of shape (n,), int64 (the labels, unchanged)
    group : Tensor of shape (n,), int64
        ``2 * y + is_minority``.

    References
    ----------
    M. Arjovsky, L. Bottou, I. Gulrajani and D. Lopez-Paz, "Invariant Risk Minimization", 2019.

    Examples
    --------
    >>> x, y = torch.rand(20, 1, 8, 8), torch.arange(2).repeat(10)
    >>> xc, yc, group = color_digits(x, y, minority_fraction=0.2, generator=0)
    >>> xc.shape, torch.bincount(group).tolist()
    (torch.Size([20, 3, 8, 8]), [8, 2, 8, 2])
    """
    func = "color_digits"
    x, y = check_xy(x, y, func, x_ndim=4)
    if x.shape[1] != 1:
        fail(func, "x", "a tensor of grey-scale images of shape (n, 1, h, w)", x)
    if int(y.max()) >= PALETTE.shape[0]:
        fail(func, "y", f"labels in [0, {PALETTE.shape[0]})", f"<a maximum label of {int(y.max())}>")
    frac = check_float(minority_fraction, "minority_fraction", func, low=0.0, high=1.0)
    shift = check_int(shift, "shift", func, low=1, high=PALETTE.shape[0] - 1)
    spurious = check_bool(spurious, "spurious", func)
    gen = check_generator(generator, func)
    y_cpu = y.cpu()
    minority = torch.zeros(x.shape[0], dtype=torch.bool)
    for c in torch.unique(y_cpu).tolist():
        members = (y_cpu == c).nonzero().squeeze(1)
        k = math.floor(frac * members.numel() + 0.5)
        minority[members[torch.randperm(members.numel(), generator=gen)[:k]]] = True
    base = y_cpu if spurious else torch.zeros_like(y_cpu)
    colour_class = (base + shift * minority.long()) % PALETTE.shape[0]
    colours = PALETTE[colour_class].to(x.device, x.dtype)  # (n, 3)
    x_rgb = x * colours[:, :, None, None]  # (n, 1, h, w) * (n, 3, 1, 1) -> (n, 3, h, w)
    group = (2 * y_cpu + minority.long()).to(y.device)
    return x_rgb.float(), y.clone(), group


def load_colored_mnist(root=None, split: str = "train", *, n_per_class: int | None = None,
                       minority_fraction: float = 0.05, shift: int = 1, spurious: bool = False, generator=0):
    """Coloured MNIST with a rare colour subgroup in every class (see :func:`color_digits`).

    Parameters
    ----------
    root : path, optional
        Data folder as in :func:`distillkit.data.load_mnist` (the file is never downloaded here).
    split : {"train", "test"}
    n_per_class : int, optional
        Keep this many random images of every class (all when None).
    minority_fraction, shift, spurious :
        As in :func:`color_digits`.
    generator : torch.Generator, int or None
        Drives the subsampling and the choice of the minority.

    Returns
    -------
    x : Tensor of shape (n, 3, 28, 28), float32
    y : Tensor of shape (n,), int64
    group : Tensor of shape (n,), int64
    """
    from .idx import load_mnist

    func = "load_colored_mnist"
    gen = check_generator(generator, func)
    x, y = load_mnist(root, split, download=False)
    if n_per_class is not None:
        n_per_class = check_int(n_per_class, "n_per_class", func, low=1, high=int(torch.bincount(y).min()))
        members = [(y == c).nonzero().squeeze(1) for c in range(10)]
        keep = torch.cat([m[torch.randperm(m.numel(), generator=gen)[:n_per_class]] for m in members])
        keep = keep.sort().values
        x, y = x[keep], y[keep]
    return color_digits(x, y, minority_fraction=minority_fraction, shift=shift, spurious=spurious, generator=gen)


def gaussian_noise(x: torch.Tensor, *, variance: float = 0.005, generator=None) -> torch.Tensor:
    """Add N(0, variance) noise to every pixel and clip to [0, 1].

    Parameters
    ----------
    x : Tensor of shape (n, ...), values in [0, 1]
    variance : float
        0.005 in the released code (CIFAR-10).
    generator : torch.Generator, int or None

    Returns
    -------
    Tensor of the shape of ``x``

    Examples
    --------
    >>> gaussian_noise(torch.full((1, 3), 0.5), variance=0.0, generator=0)
    tensor([[0.5000, 0.5000, 0.5000]])
    """
    x = check_tensor(x, "x", "gaussian_noise", floating=True, min_rows=1)
    variance = check_float(variance, "variance", "gaussian_noise", low=0.0)
    gen = check_generator(generator, "gaussian_noise")
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    return (x + math.sqrt(variance) * noise).clamp(0.0, 1.0)


def _gaussian_kernel(sigma: float, dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, *, sigma: float = 2.0) -> torch.Tensor:
    """Separable Gaussian blur of every channel, kernel truncated at 3 sigma, edges replicated.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w)
    sigma : float
        Standard deviation in pixels (PIL's ``GaussianBlur(radius=2)`` in the released code).

    Returns
    -------
    Tensor of shape (n, c, h, w)

    Examples
    --------
    >>> gaussian_blur(torch.ones(1, 1, 5, 5), sigma=1.0).allclose(torch.ones(1, 1, 5, 5))
    True
    """
    x = check_tensor(x, "x", "gaussian_blur", ndim=4, floating=True, min_rows=1)
    sigma = check_float(sigma, "sigma", "gaussian_blur", low=0.0, low_open=True)
    k = _gaussian_kernel(sigma, x.dtype).to(x.device)
    r = (k.numel() - 1) // 2
    n, c, h, w = x.shape
    z = x.reshape(n * c, 1, h, w)  # channels as a batch: (n, c, h, w) -> (n*c, 1, h, w)
    z = F.conv2d(F.pad(z, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))  # along width
    z = F.conv2d(F.pad(z, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))  # along height
    return z.reshape(n, c, h, w)


def invert(x: torch.Tensor) -> torch.Tensor:
    """Colour inversion ``1 - x`` of images in [0, 1] (PIL's ``ImageOps.invert``).

    Examples
    --------
    >>> invert(torch.tensor([0.0, 0.25, 1.0]))
    tensor([1.0000, 0.7500, 0.0000])
    """
    x = check_tensor(x, "x", "invert", floating=True)
    return 1.0 - x


def shifted_test_sets(x: torch.Tensor, *, variance: float = 0.005, sigma: float = 2.0,
                      generator=0) -> dict[str, torch.Tensor]:
    """The clean test images and their three shifted versions.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w), values in [0, 1]
    variance, sigma :
        Noise variance and blur standard deviation.
    generator : torch.Generator, int or None
        Drives the noise.

    Returns
    -------
    dict
        ``{"clean": x, "noise": ..., "blur": ..., "invert": ...}``, each of the shape of ``x``.
    """
    x = check_tensor(x, "x", "shifted_test_sets", ndim=4, floating=True, min_rows=1)
    return {"clean": x, "noise": gaussian_noise(x, variance=variance, generator=generator),
            "blur": gaussian_blur(x, sigma=sigma), "invert": invert(x)}
