"""Data with recorded subgroups: coloured digits with an exact rare subgroup, the three test-time
shifts, and the UCI Adult loader (shapes, subgroup counts, MD5, corrupt files)."""

import gzip
import hashlib
import math
import shutil

import pytest
import torch

from distillkit.data import DatasetFileError, resolve_root
from distillkit.data.adult import GROUP_NAMES, adult_feature_names, load_adult
from distillkit.data.subgroups import (
    PALETTE,
    color_digits,
    gaussian_blur,
    gaussian_noise,
    invert,
    load_colored_mnist,
    shifted_test_sets,
)

SHARED_DATA = resolve_root()  # DISTILLKIT_DATA, set by conftest.py to the offline copy when present
ADULT = SHARED_DATA / "adult"
needs_adult = pytest.mark.skipif(not (ADULT / "adult.data.gz").exists(), reason="UCI Adult files not available")


# ----------------------------------------------------------------------------- coloured digits
def _digits(sizes):
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(sizes)])
    return torch.rand(len(y), 1, 6, 6, generator=g), y


def test_color_digits_minority_counts_are_exact_per_class():
    x, y = _digits([7, 20, 33, 100, 10])
    xc, yc, group = color_digits(x, y, minority_fraction=0.05, generator=0)
    # floor(0.05 n + 0.5): 7 -> 0, 20 -> 1, 33 -> 2, 100 -> 5, 10 -> 1 (0.5 rounds up)
    minority = group % 2
    assert [int(minority[y == c].sum()) for c in range(5)] == [0, 1, 2, 5, 1]
    assert torch.equal(yc, y) and torch.equal(group // 2, y)
    assert xc.shape == (len(y), 3, 6, 6)


@pytest.mark.parametrize("spurious", [False, True])
def test_color_digits_paints_the_stated_colours(spurious):
    x, y = _digits([40, 40, 40])
    xc, _, group = color_digits(x, y, minority_fraction=0.25, shift=2, spurious=spurious, generator=1)
    for i in range(len(y)):
        base = int(y[i]) if spurious else 0
        colour_class = (base + 2) % 10 if int(group[i]) % 2 else base
        assert torch.equal(xc[i], x[i] * PALETTE[colour_class][:, None, None])


def test_color_digits_is_deterministic():
    x, y = _digits([30, 30])
    a = color_digits(x, y, generator=5)
    b = color_digits(x, y, generator=5)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    others = [color_digits(x, y, minority_fraction=0.5, generator=s)[2] for s in range(3)]
    assert not torch.equal(others[0], others[1]) or not torch.equal(others[1], others[2])


def test_color_digits_bad_input():
    x, y = _digits([10, 10])
    with pytest.raises(ValueError, match="'x' parameter of color_digits must be a tensor of grey-scale"):
        color_digits(x.repeat(1, 3, 1, 1), y)
    with pytest.raises(ValueError, match="'y' parameter of color_digits must be labels in \\[0, 10\\)"):
        color_digits(x, y + 9)
    with pytest.raises(ValueError, match="'minority_fraction'"):
        color_digits(x, y, minority_fraction=1.5)
    with pytest.raises(ValueError, match="'shift'"):
        color_digits(x, y, shift=0)
    with pytest.raises(TypeError, match="'spurious'"):
        color_digits(x, y, spurious=1)
    with pytest.raises(ValueError, match="'y'"):
        color_digits(x, y[:5])


def test_load_colored_mnist(mnist_root):
    x, y, group = load_colored_mnist(split="test", n_per_class=100, minority_fraction=0.05, generator=0)
    assert x.shape == (1000, 3, 28, 28) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [100] * 10
    assert torch.bincount(group).tolist() == [95, 5] * 10  # the minority fraction, exactly
    again = load_colored_mnist(split="test", n_per_class=100, minority_fraction=0.05, generator=0)
    assert torch.equal(x, again[0]) and torch.equal(group, again[2])


# ----------------------------------------------------------------------------- shifts
def test_gaussian_noise_has_the_stated_variance_and_is_clipped():
    x = torch.full((200, 3, 10, 10), 0.5)
    noisy = gaussian_noise(x, variance=0.005, generator=0)
    assert float((noisy - x).var()) == pytest.approx(0.005, rel=0.03)
    assert torch.equal(noisy, gaussian_noise(x, variance=0.005, generator=0))
    edge = gaussian_noise(torch.zeros(1000), variance=0.01, generator=1)
    assert float(edge.min()) == 0.0 and float((edge == 0).float().mean()) == pytest.approx(0.5, abs=0.06)
    with pytest.raises(ValueError, match="'variance'"):
        gaussian_noise(x, variance=-1.0)


def test_gaussian_blur_of_a_point_is_the_sampled_gaussian():
    sigma = 2.0
    img = torch.zeros(1, 1, 31, 31, dtype=torch.float64)
    img[0, 0, 15, 15] = 1.0
    out = gaussian_blur(img, sigma=sigma)
    k = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-6, 7)]  # radius ceil(3 sigma) = 6
    k = torch.tensor(k, dtype=torch.float64) / sum(k)
    expected = torch.zeros(31, 31, dtype=torch.float64)
    expected[9:22, 9:22] = torch.outer(k, k)
    assert torch.allclose(out[0, 0], expected, atol=1e-12)
    const = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(const), const)  # edges replicated: constants stay
    with pytest.raises(ValueError, match="'sigma'"):
        gaussian_blur(const, sigma=0.0)
    with pytest.raises(ValueError, match="'x' parameter of gaussian_blur must be a 4-dimensional"):
        gaussian_blur(torch.zeros(3, 8, 8))


def test_invert_and_the_shifted_sets():
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(invert(x), 1 - x)
    assert torch.allclose(invert(invert(x)), x)
    sets = shifted_test_sets(x, generator=0)
    assert list(sets) == ["clean", "noise", "blur", "invert"]
    assert torch.equal(sets["clean"], x) and torch.equal(sets["invert"], 1 - x)
    assert all(v.shape == x.shape for v in sets.values())
    assert not torch.equal(sets["noise"], x) and not torch.equal(sets["blur"], x)


# ----------------------------------------------------------------------------- UCI Adult
@needs_adult
def test_adult_md5_constants_are_those_of_the_files():
    from distillkit.data.adult import _FILES

    for split, (name, md5, _) in _FILES.items():
        assert hashlib.md5((ADULT / name).read_bytes()).hexdigest() == md5, split


@needs_adult
def test_adult_shapes_labels_and_subgroup_counts():
    x, y, sex = load_adult(SHARED_DATA, "train", subgroup="sex")
    assert x.shape == (32561, 107) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y.sum()) == 7841  # rows with income >50K in the UCI training file
    assert torch.bincount(sex).tolist() == [10771, 21790]  # Female, Male
    _, _, race = load_adult(SHARED_DATA, "train", subgroup="race")
    assert torch.bincount(race).tolist() == [311, 1039, 3124, 271, 27816]
    xt, yt, sex_t = load_adult(SHARED_DATA, "test", subgroup="sex")
    assert xt.shape == (16281, 107) and int(yt.sum()) == 3846
    assert torch.bincount(sex_t).tolist() == [5421, 10860]
    assert GROUP_NAMES["sex"] == ("Female", "Male")
    # standardised numeric block, one-hot categorical block (8 columns set per row)
    assert torch.allclose(x[:, :5].mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(x[:, :5].std(0, unbiased=False), torch.ones(5), atol=1e-4)
    assert torch.equal(x[:, 5:].sum(1), torch.full((32561,), 8.0))
    names = adult_feature_names(SHARED_DATA)
    assert len(names) == 107 and names[:2] == ["age", "education-num"]
    assert bool((x[:, names.index("sex=Male")] == (sex == 1).float()).all())


@needs_adult
def test_adult_corrupt_and_missing_files(tmp_path):
    folder = tmp_path / "adult"
    folder.mkdir()
    for name in ("adult.data.gz", "adult.test.gz"):
        shutil.copy(ADULT / name, folder / name)
    data = (folder / "adult.data.gz").read_bytes()
    (folder / "adult.data.gz").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DatasetFileError, match="adult.data.gz is corrupt or truncated"):
        load_adult(tmp_path, "train")
    flipped = bytearray(data)
    flipped[1000] ^= 0xFF
    (folder / "adult.data.gz").write_bytes(bytes(flipped))  # same size, one byte changed
    with pytest.raises(DatasetFileError, match="adult.data.gz"):
        load_adult(tmp_path, "test")  # the test split needs the training statistics too
    (folder / "adult.data.gz").write_bytes(data)
    (folder / "adult.test.gz").unlink()
    with pytest.raises(FileNotFoundError, match="adult.test.gz"):
        load_adult(tmp_path, "test")
    assert load_adult(tmp_path, "train")[0].shape == (32561, 107)  # the restored file loads


def test_adult_bad_options(tmp_path):
    with pytest.raises(ValueError, match="'split' parameter of load_adult"):
        load_adult(tmp_path, "validation")
    with pytest.raises(ValueError, match="'subgroup' parameter of load_adult"):
        load_adult(tmp_path, subgroup="age")
    with pytest.raises(FileNotFoundError, match="adult.data.gz"):
        load_adult(tmp_path)


def test_adult_unparseable_file_names_it(tmp_path, monkeypatch):
    import distillkit.data.adult as adult

    folder = tmp_path / "adult"
    folder.mkdir()
    bad = folder / "adult.data.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write("39, State-gov, 77516\n")
    monkeypatch.setitem(adult._FILES, "train", ("adult.data.gz", hashlib.md5(bad.read_bytes()).hexdigest(), 1))
    with pytest.raises(DatasetFileError, match="adult.data.gz has a row with 3 fields"):
        load_adult(tmp_path, "train")
