"""Differentiable Siamese Augmentation (DSA).

DSA (Zhao & Bilen, ICML 2021) augments the real and the synthetic batch with *the same*
random transformation before their gradients (or embeddings) are matched, and every
transformation is differentiable with respect to the pixels, so the synthetic images learn
through it. Here one parameter draw is an :class:`AugParams` object that
:func:`apply_aug` applies to any batch: the Siamese property holds by construction.

A draw follows the reference's single mode ("S"): one family is chosen per call from the
``strategy`` string (families joined by ``_``), then its parameters are drawn as uniforms
in [0, 1) and mapped to the reference ranges when applied:

========  =====================================================================
family    transformation (U ~ U[0, 1))
========  =====================================================================
color     brightness ``x + (U - 0.5)``, then saturation ``(x - m) * 2U + m``
          (m the mean over channels), then contrast ``(x - mean) * (U + 0.5) + mean``
crop      integer translation in ``[-s, s]`` per axis, s = int(0.125 * size + 0.5),
          zero fill
cutout    a square hole of side int(0.5 * size + 0.5) at a random centre
flip      horizontal flip with probability 0.5
scale     ``sx, sy ~ U(1/1.2, 1.2)`` independently (affine grid, bilinear)
rotate    angle ``~ U(-15, 15)`` degrees (affine grid, bilinear)
========  =====================================================================

A draw with one row applies to every sample (Siamese use); a draw with one row per sample
gives each sample its own transformation (:func:`dsa_augment`, for training on a synthetic
set). All random numbers come from a CPU ``generator``; the arithmetic runs on ``x.device``.
DC's (non-differentiable) evaluation augmentation is :func:`~distillkit.distill.eval_augment.dc_augment`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._validation import check_generator, check_tensor, fail
from .eval_augment import dc_augment  # noqa: F401  (importable from here, as before)

__all__ = [
    "AugParams",
    "FAMILIES",
    "DEFAULT_STRATEGY",
    "DIGITS_STRATEGY",
    "sample_aug_params",
    "apply_aug",
    "siamese_augment",
    "dsa_augment",
]

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DIGITS_STRATEGY = "color_crop_cutout_scale_rotate"  # no flip for digits (reference README)
_N_DRAWS = {"color": 3, "crop": 2, "cutout": 2, "flip": 1, "scale": 2, "rotate": 1}
_SCALE, _ROTATE_DEG, _CROP, _CUTOUT, _FLIP = 1.2, 15.0, 0.125, 0.5, 0.5


@dataclass(frozen=True)
class AugParams:
    """One draw of DSA parameters.

    Attributes
    ----------
    family : str
        The transformation family (one of :data:`FAMILIES`).
    u : Tensor of shape (k, n_draws), CPU
        Uniform draws in [0, 1); ``k == 1`` applies one transformation to a whole batch,
        ``k == batch size`` one per sample.
    """

    family: str
    u: torch.Tensor


def _check_images(x, param: str, func: str) -> torch.Tensor:
    """Images (b, c, h, w) in float32 or float64 holding data (float16 resampling is not
    implemented on every device, and the meta device has no data)."""
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    x = check_tensor(x, param, func, ndim=4, floating=True, finite=False)
    if x.dtype not in (torch.float32, torch.float64):
        fail(func, param, "a float32 or float64 tensor", x, error=TypeError)
    return x


def _parse_strategy(strategy, func: str, param: str = "strategy") -> list[str]:
    expectation = "families from " + ", ".join(repr(f) for f in FAMILIES) + " joined by '_'"
    if not isinstance(strategy, str):
        fail(func, param, expectation, strategy, error=TypeError)
    parts = strategy.split("_")
    if not strategy or any(p not in FAMILIES for p in parts):
        fail(func, param, expectation, strategy)
    return parts


def sample_aug_params(strategy: str = DEFAULT_STRATEGY, *, batch_size: int = 1, generator=None) -> AugParams:
    """Draw one DSA transformation: a family from ``strategy``, then its uniforms.

    Parameters
    ----------
    strategy : str
        Families joined by ``_``, e.g. ``"color_crop_cutout_flip_scale_rotate"``.
    batch_size : int
        Rows of parameters: 1 for one transformation shared by every sample (Siamese), the
        batch size for one transformation per sample.
    generator : torch.Generator, int or None
        Source of the parameters.

    Returns
    -------
    AugParams

    References
    ----------
    B. Zhao, H. Bilen, "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021.

    Examples
    --------
    >>> p = sample_aug_params("rotate", generator=0)
    >>> p.family, tuple(p.u.shape)
    ('rotate', (1, 1))
    """
    func = "sample_aug_params"
    parts = _parse_strategy(strategy, func)
    from .._validation import check_int

    batch_size = check_int(batch_size, "batch_size", func, low=1)
    gen = check_generator(generator, func)
    return _sample(parts, batch_size, gen)


def _sample(parts: list[str], batch_size: int, gen: torch.Generator) -> AugParams:
    family = parts[int(torch.randint(len(parts), (1,), generator=gen))]
    return AugParams(family, torch.rand(batch_size, _N_DRAWS[family], generator=gen))


def apply_aug(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    """Apply the transformation ``params`` to a batch of images (differentiable in ``x``).

    Parameters
    ----------
    x : Tensor of shape (b, c, h, w)
        Images to transform with the given parameters.
    params : AugParams
        With 1 row (the same transformation for every sample) or ``b`` rows.

    Returns
    -------
    Tensor of shape (b, c, h, w)

    Examples
    --------
    >>> x = torch.rand(3, 1, 8, 8)
    >>> apply_aug(x, AugParams("flip", torch.zeros(1, 1))).equal(x.flip(3))
    True
    """
    func = "apply_aug"
    x = _check_images(x, "x", func)
    if not isinstance(params, AugParams):
        fail(func, "params", "an AugParams", params, error=TypeError)
    if params.family not in FAMILIES or params.u.dim() != 2 or params.u.shape[1] != _N_DRAWS[params.family]:
        fail(func, "params", "AugParams of a known family with u of shape (k, n_draws)", params)
    if params.u.shape[0] not in (1, x.shape[0]):
        fail(func, "params", f"draws with 1 or {x.shape[0]} rows (the batch size of x)", params.u)
    return _apply(x, params)


def _apply(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    b, _, h, w = x.shape
    u = params.u.to(x.device, x.dtype).expand(b, -1)  # (b, n_draws)
    fam = params.family
    if fam == "color":
        x = x + (u[:, 0, None, None, None] - 0.5)
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (u[:, 1, None, None, None] * 2.0) + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * (u[:, 2, None, None, None] + 0.5) + m
    if fam == "flip":
        return torch.where(u[:, 0, None, None, None] < _FLIP, x.flip(3), x)
    if fam == "crop":
        rows = _shifted_index(h, u[:, 0], x.device)  # (b, h) indices into the 1-padded image
        cols = _shifted_index(w, u[:, 1], x.device)  # (b, w)
        x_pad = F.pad(x, (1, 1, 1, 1))  # zero border, read when the shift leaves the image
        batch = torch.arange(b, device=x.device)[:, None, None]
        return x_pad.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if fam == "cutout":
        mask = _hole(h, u[:, 0], x.device)[:, :, None] & _hole(w, u[:, 1], x.device)[:, None, :]  # (b, h, w)
        return x * (~mask).to(x.dtype)[:, None]
    if fam == "scale":
        lo = 1.0 / _SCALE
        sx, sy = u[:, 0] * (_SCALE - lo) + lo, u[:, 1] * (_SCALE - lo) + lo
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    else:  # rotate
        angle = (u[:, 0] - 0.5) * 2.0 * _ROTATE_DEG / 180.0 * math.pi
        c, s, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)  # theta: (b, 2, 3)
    return F.grid_sample(x, grid, align_corners=True)


def _shifted_index(size: int, u: torch.Tensor, device) -> torch.Tensor:
    """Row (or column) indices of a translation by t in [-s, s] read from a 1-padded image."""
    s = int(size * _CROP + 0.5)
    t = (u * (2 * s + 1)).floor().long().clamp(max=2 * s) - s  # (b,)
    return (torch.arange(size, device=device)[None, :] + t[:, None] + 1).clamp(0, size + 1)


def _hole(size: int, u: torch.Tensor, device) -> torch.Tensor:
    """Boolean (b, size): which rows (or columns) the cutout square covers."""
    cut = int(size * _CUTOUT + 0.5)
    n_off = size + (1 - cut % 2)
    centre = (u * n_off).floor().long().clamp(max=n_off - 1)  # (b,)
    low = centre - cut // 2
    r = torch.arange(size, device=device)[None, :]
    return (r >= low[:, None]) & (r < low[:, None] + cut)


def siamese_augment(x_real: torch.Tensor, x_syn: torch.Tensor, *, strategy: str = DEFAULT_STRATEGY,
                    generator=None, params: AugParams | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one DSA transformation to every image of both batches.

    Parameters
    ----------
    x_real : Tensor of shape (n, c, h, w)
        A real batch.
    x_syn : Tensor of shape (m, c, h, w)
        A synthetic batch; it gets the same transformation as the real one.
    strategy : str
        Families to choose from (ignored when ``params`` is given).
    generator : torch.Generator, int or None
        Source of the shared parameters (ignored when ``params`` is given).
    params : AugParams, optional
        A draw with one row to use instead of sampling one.

    Returns
    -------
    (Tensor, Tensor)
        The augmented real and synthetic batches, differentiable in both inputs.

    References
    ----------
    B. Zhao, H. Bilen, "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021.

    Examples
    --------
    >>> x = torch.rand(4, 1, 8, 8)
    >>> a, b = siamese_augment(x, x[:2], generator=0)
    >>> torch.equal(a[:2], b)
    True
    """
    func = "siamese_augment"
    x_real = _check_images(x_real, "x_real", func)
    x_syn = _check_images(x_syn, "x_syn", func)
    if x_syn.shape[1:] != x_real.shape[1:]:
        fail(func, "x_syn", f"images of shape {tuple(x_real.shape[1:])} like x_real", x_syn)
    if params is None:
        params = _sample(_parse_strategy(strategy, func), 1, check_generator(generator, func))
    elif not isinstance(params, AugParams) or params.u.dim() != 2 or params.u.shape[0] != 1:
        fail(func, "params", "an AugParams with one row of draws", params, error=TypeError)
    return apply_aug(x_real, params), apply_aug(x_syn, params)


def dsa_augment(x: torch.Tensor, generator=None, strategy: str = DEFAULT_STRATEGY) -> torch.Tensor:
    """DSA with an independent transformation per sample (one family per call), for training
    a network on a synthetic set; usable as ``train_model(..., augment=dsa_augment)``.

    Parameters
    ----------
    x : Tensor of shape (b, c, h, w)
        Images; each one gets its own random transformation.
    generator : torch.Generator, int or None
        Source of the transformation parameters.
    strategy : str
        Families joined by ``_``, as in :func:`sample_aug_params`.

    Returns
    -------
    Tensor of shape (b, c, h, w)

    Examples
    --------
    >>> dsa_augment(torch.rand(5, 1, 8, 8), 0).shape
    torch.Size([5, 1, 8, 8])
    """
    func = "dsa_augment"
    x = _check_images(x, "x", func)
    params = _sample(_parse_strategy(strategy, func), x.shape[0], check_generator(generator, func))
    return _apply(x, params)
