"""Small 2-D data sets for pictures: Gaussian blobs with minority subgroups, and moons."""

from __future__ import annotations

import math

import torch

from .._validation import check_float, check_generator, check_int

__all__ = ["make_subgroup_blobs", "make_moons"]


def make_subgroup_blobs(
    n: int = 1000,
    *,
    n_classes: int = 2,
    modes_per_class: int = 2,
    minority_fraction: float = 0.1,
    spread: float = 0.35,
    generator=None,
):
    """Gaussian blobs in 2-D where each class has one majority mode and smaller minority modes.

    The modes sit on a circle of radius 2, classes interleaved, so that a classifier which
    ignores a class's minority mode misclassifies it. Within each class the minority modes
    share ``minority_fraction`` of the points equally; the majority mode has the rest.

    Parameters
    ----------
    n : int
        Number of points.
    n_classes : int
        Number of classes.
    modes_per_class : int
        Modes (subgroups) per class: one majority mode and the rest minority modes.
    minority_fraction : float
        Fraction of each class's points shared by its minority modes, in [0, 1).
    spread : float
        Standard deviation of every blob.
    generator : torch.Generator, int or None
        Source of the points.

    Returns
    -------
    x : Tensor of shape (n, 2), float32
    y : Tensor of shape (n,), int64
    group : Tensor of shape (n,), int64
        ``class * modes_per_class + mode``; mode 0 is the majority mode.
    """
    func = "make_subgroup_blobs"
    n = check_int(n, "n", func, low=1)
    n_classes = check_int(n_classes, "n_classes", func, low=1)
    modes = check_int(modes_per_class, "modes_per_class", func, low=1)
    frac = check_float(minority_fraction, "minority_fraction", func, low=0.0, high=1.0, high_open=True)
    spread = check_float(spread, "spread", func, low=0.0, low_open=True)
    gen = check_generator(generator, func)
    if n < n_classes * modes:
        raise ValueError(f"The 'n' parameter of {func} must be at least n_classes * modes_per_class = {n_classes * modes}. Got {n} instead.")

    per_class = [n // n_classes + (1 if c < n % n_classes else 0) for c in range(n_classes)]
    xs, ys, gs = [], [], []
    total_modes = n_classes * modes
    for c in range(n_classes):
        n_minor_total = round(per_class[c] * frac) if modes > 1 else 0
        counts = [per_class[c] - n_minor_total] + [
            n_minor_total // (modes - 1) + (1 if m < n_minor_total % (modes - 1) else 0) for m in range(modes - 1)
        ]
        for m, count in enumerate(counts):
            angle = 2 * math.pi * (m * n_classes + c) / total_modes
            centre = torch.tensor([2 * math.cos(angle), 2 * math.sin(angle)])
            xs.append(centre + spread * torch.randn(count, 2, generator=gen))
            ys.append(torch.full((count,), c, dtype=torch.int64))
            gs.append(torch.full((count,), c * modes + m, dtype=torch.int64))
    x, y, g = torch.cat(xs), torch.cat(ys), torch.cat(gs)
    order = torch.randperm(n, generator=gen)
    return x[order].float(), y[order], g[order]


def make_moons(n: int = 500, *, noise: float = 0.1, generator=None):
    """Two interleaving half circles (scikit-learn's moons), drawn from ``generator``.

    Parameters
    ----------
    n : int
        Number of points, at least 2 (half in each moon).
    noise : float
        Standard deviation of the Gaussian noise added to every point.
    generator : torch.Generator, int or None
        Source of the points.

    Returns
    -------
    x : Tensor of shape (n, 2), float32
    y : Tensor of shape (n,), int64
    """
    n = check_int(n, "n", "make_moons", low=2)
    noise = check_float(noise, "noise", "make_moons", low=0.0)
    gen = check_generator(generator, "make_moons")
    n0 = (n + 1) // 2
    t0 = torch.rand(n0, generator=gen) * math.pi
    t1 = torch.rand(n - n0, generator=gen) * math.pi
    upper = torch.stack([torch.cos(t0), torch.sin(t0)], 1)
    lower = torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=gen)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n - n0, dtype=torch.int64)])
    order = torch.randperm(n, generator=gen)
    return x[order].float(), y[order]
