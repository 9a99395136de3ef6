"""Tests of the differentiable Siamese augmentation (distillkit.distill.augment)."""

import math

import pytest
import torch

from distillkit.distill.augment import (
    DEFAULT_STRATEGY,
    FAMILIES,
    AugParams,
    apply_aug,
    dsa_augment,
    sample_aug_params,
    siamese_augment,
)
from distillkit.distill.eval_augment import dc_augment


def _images(n=5, c=1, size=12, seed=0, dtype=torch.float32):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _blob(size=33, centre=(8.0, 20.0)):
    """A small Gaussian blob at (row, col) = centre, as a (1, 1, size, size) image."""
    r = torch.arange(size, dtype=torch.float64)
    img = torch.exp(-((r[:, None] - centre[0]) ** 2 + (r[None, :] - centre[1]) ** 2) / 2.0)
    return img[None, None]


def _centroid(img):
    img = img[0, 0]
    r = torch.arange(img.shape[0], dtype=img.dtype)
    total = img.sum()
    return float((img.sum(1) * r).sum() / total), float((img.sum(0) * r).sum() / total)


@pytest.mark.parametrize("family", FAMILIES)
def test_siamese_applies_identical_transform_to_both_batches(family):
    x_real = _images(6, c=3, seed=1)
    for seed in range(8):
        a, b = siamese_augment(x_real, x_real[:2], strategy=family, generator=seed)
        assert torch.equal(a[:2], b)  # the same image in both batches -> the same output
        # every sample of a batch gets the same transform: two copies of an image stay equal
        twin = torch.cat([x_real[:1], x_real[:1]])
        a, b = siamese_augment(twin, twin[:1], strategy=family, generator=seed)
        assert torch.equal(a[0], a[1]) and torch.equal(a[0], b[0])


def test_siamese_with_given_params_and_by_construction():
    x = _images(4, seed=2)
    params = sample_aug_params("rotate", generator=3)
    a, b = siamese_augment(x, x.flip(0), params=params)
    assert torch.equal(a, apply_aug(x, params)) and torch.equal(b.flip(0), a)


@pytest.mark.parametrize("family", FAMILIES)
def test_augmentation_is_differentiable_in_the_images(family):
    x = _images(2, c=3, size=6, seed=3, dtype=torch.float64).requires_grad_(True)
    params = AugParams(family, torch.rand(2, len(sample_aug_params(family).u[0]),
                                          generator=torch.Generator().manual_seed(4)))
    assert torch.autograd.gradcheck(lambda t: apply_aug(t, params), (x,))
    x_real = _images(3, size=8, seed=5).requires_grad_(True)
    x_syn = _images(2, size=8, seed=6).requires_grad_(True)
    a, b = siamese_augment(x_real, x_syn, strategy=family, generator=0)
    (a.sum() + (b**2).sum()).backward()
    assert x_real.grad.abs().sum() > 0 and x_syn.grad.abs().sum() > 0


def test_deterministic_given_generator():
    x = _images(8, c=3, seed=7)
    a = [dsa_augment(x, seed) for seed in (0, 0, 1)]
    assert torch.equal(a[0], a[1])
    p1, p2 = sample_aug_params(generator=5), sample_aug_params(generator=5)
    assert p1.family == p2.family and torch.equal(p1.u, p2.u)
    outs = {tuple(dsa_augment(x, seed).flatten()[:50].tolist()) for seed in range(6)}
    assert len(outs) > 1
    g = torch.Generator().manual_seed(0)
    r1 = siamese_augment(x, x[:1], generator=g)[0]
    r2 = siamese_augment(x, x[:1], generator=g)[0]  # the generator advanced: (almost surely) another draw
    g.manual_seed(0)
    assert torch.equal(siamese_augment(x, x[:1], generator=g)[0], r1) and not torch.equal(r1, r2)


def test_family_is_drawn_from_the_strategy_uniformly():
    g = torch.Generator().manual_seed(0)
    counts = {f: 0 for f in FAMILIES}
    for _ in range(1200):
        counts[sample_aug_params(DEFAULT_STRATEGY, generator=g).family] += 1
    assert all(150 < c < 250 for c in counts.values())
    assert {sample_aug_params("crop_flip", generator=s).family for s in range(40)} == {"crop", "flip"}


def test_per_sample_draws_differ_in_dsa_augment():
    x = _images(1, seed=8).expand(16, -1, -1, -1)
    out = dsa_augment(x, 0, "rotate")
    assert not torch.equal(out[0], out[1])


def test_brightness_saturation_contrast_formulas():
    x = _images(2, c=3, size=4, seed=9, dtype=torch.float64)
    u = torch.tensor([[0.9, 0.25, 0.7]])
    out = apply_aug(x, AugParams("color", u))
    ref = x + (0.9 - 0.5) * 1.0
    m = ref.mean(1, keepdim=True)
    ref = (ref - m) * (0.25 * 2.0) + m
    m = ref.mean((1, 2, 3), keepdim=True)
    ref = (ref - m) * (0.7 + 0.5) + m
    assert torch.allclose(out, ref)
    # ranges: brightness shift in [-0.5, 0.5) on a constant 1-channel image (saturation, contrast no-ops)
    flat = torch.full((1, 1, 4, 4), 0.3, dtype=torch.float64)
    lo = apply_aug(flat, AugParams("color", torch.tensor([[0.0, 0.5, 0.5]])))
    hi = apply_aug(flat, AugParams("color", torch.tensor([[1.0, 0.5, 0.5]])))
    assert torch.allclose(lo, flat - 0.5) and torch.allclose(hi, flat + 0.5)


def test_crop_translation_range_is_integer_and_bounded():
    size = 28
    s = int(size * 0.125 + 0.5)  # 4 pixels
    assert s == 4
    img = torch.zeros(1, 1, size, size)
    img[0, 0, 14, 14] = 1.0
    shifts = set()
    for u0 in torch.linspace(0, 0.999, 50):
        for u1 in (0.0, 0.999):
            out = apply_aug(img, AugParams("crop", torch.tensor([[float(u0), u1]])))
            (r, c), = out[0, 0].nonzero().tolist()
            shifts.add((14 - r, 14 - c))
    assert {dr for dr, _ in shifts} == set(range(-s, s + 1))
    assert {dc for _, dc in shifts} == {-s, s}
    # content leaving the image is replaced by zeros
    ones = torch.ones(1, 1, 8, 8)
    out = apply_aug(ones, AugParams("crop", torch.tensor([[0.999, 0.0]])))  # shift by +1 row, -1 column
    assert out.sum() == 7 * 7


def test_cutout_hole_is_half_the_side():
    ones = torch.ones(1, 1, 28, 28)
    areas = []
    for u in torch.linspace(0, 0.999, 29):
        out = apply_aug(ones, AugParams("cutout", torch.tensor([[float(u), 0.5]])))
        areas.append(int((out == 0).sum()))
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert max(areas) == 14 * 14 and min(areas) == 7 * 14  # centred on the border: half the hole


def test_flip_probability_half():
    x = _images(1, seed=10)
    assert torch.equal(apply_aug(x, AugParams("flip", torch.tensor([[0.49]]))), x.flip(3))
    assert torch.equal(apply_aug(x, AugParams("flip", torch.tensor([[0.5]]))), x)
    p = sample_aug_params("flip", batch_size=4000, generator=0)
    assert 0.46 < float((p.u < 0.5).double().mean()) < 0.54


def test_rotate_range_and_geometry():
    img = _blob()
    centre = (33 - 1) / 2
    for u, degrees in ((0.0, -15.0), (1.0, 15.0), (0.5, 0.0)):
        out = apply_aug(img, AugParams("rotate", torch.tensor([[u]], dtype=torch.float64)))
        # output p samples input R p (normalised coords, align_corners=True): the blob at q moves to R^-1 q
        a = math.radians(degrees)
        qx, qy = (20.0 - centre), (8.0 - centre)  # (col, row) offsets from the centre
        px = math.cos(a) * qx + math.sin(a) * qy
        py = -math.sin(a) * qx + math.cos(a) * qy
        r, c = _centroid(out)
        assert r == pytest.approx(centre + py, abs=0.15) and c == pytest.approx(centre + px, abs=0.15)


def test_scale_range_and_geometry():
    img = _blob()
    centre = 16.0
    for u0, u1 in ((0.0, 1.0), (1.0, 0.0)):
        sx = u0 * (1.2 - 1 / 1.2) + 1 / 1.2
        sy = u1 * (1.2 - 1 / 1.2) + 1 / 1.2
        out = apply_aug(img, AugParams("scale", torch.tensor([[u0, u1]], dtype=torch.float64)))
        r, c = _centroid(out)
        assert c == pytest.approx(centre + (20.0 - centre) / sx, abs=0.15)
        assert r == pytest.approx(centre + (8.0 - centre) / sy, abs=0.15)
    p = sample_aug_params("scale", batch_size=2000, generator=1)
    assert p.u.min() >= 0 and p.u.max() < 1 and p.u.min() < 0.01 and p.u.max() > 0.99


def test_dc_augment_is_deterministic_and_keeps_shape():
    x = _images(16, size=28, seed=11)
    a, b = dc_augment(x, 0), dc_augment(x, 0)
    assert torch.equal(a, b) and a.shape == x.shape and torch.isfinite(a).all()
    assert not torch.equal(a, x)
    # fill value is the per-channel mean: a constant image stays constant
    flat = torch.full((4, 1, 28, 28), 0.25)
    assert torch.allclose(dc_augment(flat, 1), flat, atol=1e-6)


def test_augment_errors():
    x = _images(2)
    with pytest.raises(ValueError, match="'strategy' parameter of siamese_augment"):
        siamese_augment(x, x, strategy="color_blur")
    with pytest.raises(ValueError, match="'strategy' parameter of dsa_augment"):
        dsa_augment(x, 0, "")
    with pytest.raises(TypeError, match="'strategy' parameter of sample_aug_params"):
        sample_aug_params(None)
    with pytest.raises(ValueError, match="'batch_size' parameter of sample_aug_params"):
        sample_aug_params(batch_size=0)
    with pytest.raises(ValueError, match="'x_syn' parameter of siamese_augment"):
        siamese_augment(x, _images(2, size=10))
    with pytest.raises(ValueError, match="'x_real' parameter of siamese_augment"):
        siamese_augment(torch.zeros(2, 12, 12), x)
    with pytest.raises(TypeError, match="'params' parameter of siamese_augment"):
        siamese_augment(x, x, params=sample_aug_params(batch_size=2))
    with pytest.raises(ValueError, match="'params' parameter of apply_aug"):
        apply_aug(_images(3), sample_aug_params("flip", batch_size=2))
    with pytest.raises(ValueError, match="'params' parameter of apply_aug"):
        apply_aug(x, AugParams("blur", torch.zeros(1, 1)))
    with pytest.raises(TypeError, match="'params' parameter of apply_aug"):
        apply_aug(x, {"family": "flip"})
    with pytest.raises(ValueError, match="'x' parameter of dc_augment"):
        dc_augment(torch.zeros(3, 28, 28), 0)
    with pytest.raises(TypeError, match="'generator' parameter of dsa_augment"):
        dsa_augment(x, "seed")
