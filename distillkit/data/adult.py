"""UCI Adult (census income, Becker & Kohavi 1996) with its recorded subgroups, sex and race.

The files are read from ``<root>/adult/adult.data.gz`` and ``<root>/adult/adult.test.gz`` (the
UCI files, gzipped), with the root resolved like every distillkit loader: the ``root`` argument,
then ``$DISTILLKIT_DATA``, then the per-user cache (:func:`distillkit.data.resolve_root`). Both
files are checked against their MD5 first; a truncated or altered file raises
:class:`~distillkit.data.DatasetFileError` naming it. Nothing is downloaded.

Features: the five numeric columns (age, education-num, capital-gain, capital-loss,
hours-per-week) standardised with the training split's mean and standard deviation, then a
one-hot block for each of the eight categorical columns (categories of the training split,
sorted; the UCI placeholder ``?`` is a category of its own). ``fnlwgt``, a census sampling weight
rather than a property of the person, is dropped. The label is ``income > 50K``.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io

import numpy as np
import torch

from .._validation import check_option
from .idx import DatasetFileError, _md5, resolve_root

__all__ = ["load_adult", "adult_feature_names", "GROUP_NAMES"]

_FILES = {"train": ("adult.data.gz", "945afe60d0a702168e91cc89b068cca1", 32561),
          "test": ("adult.test.gz", "203b162ca23ef71c99503d1a21f33faa", 16281)}
_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
            "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
            "income")
_NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
_CATEGORICAL = ("workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
                "native-country")

GROUP_NAMES = {
    "sex": ("Female", "Male"),
    "race": ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"),
}
"""Subgroup names by attribute; a group id is the position of its name here."""


def _read(path) -> list[list[str]]:
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            text = fh.read()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetFileError(f"The file {path} cannot be read as gzipped text ({exc}). "
                               f"Replace it with the original file.") from exc
    rows = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or row[0].startswith("|"):  # blank lines and the test file's first line
            continue
        if len(row) != len(_COLUMNS):
            raise DatasetFileError(f"The file {path} has a row with {len(row)} fields, expected {len(_COLUMNS)}: "
                                   f"{','.join(row)[:80]!r}. Replace it with the original file.")
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=4)
def _parse(path: str, mtime_ns: int, size: int, n_rows: int):
    rows = _read(path)
    if len(rows) != n_rows:
        raise DatasetFileError(f"The file {path} has {len(rows)} rows, expected {n_rows}. "
                               f"Replace it with the original file.")
    return rows


def _load_split(root, split: str):
    """Rows of one split, after the MD5 check (which runs on every call; parsing is cached)."""
    name, md5, n_rows = _FILES[split]
    path = resolve_root(root) / "adult" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Set DISTILLKIT_DATA (or root=) to a folder holding "
                                f"adult/{name} (the UCI file, gzipped; MD5 {md5}).")
    got = _md5(path)
    if got != md5:
        raise DatasetFileError(f"The file {path} is corrupt or truncated: its MD5 is {got}, expected {md5}. "
                               f"Replace it with the original file.")
    stat = path.stat()
    return _parse(str(path), stat.st_mtime_ns, stat.st_size, n_rows)


def _encode(rows, train_rows):
    col = {name: i for i, name in enumerate(_COLUMNS)}
    train_num = np.array([[float(r[col[c]]) for c in _NUMERIC] for r in train_rows])
    mean, std = train_num.mean(0), train_num.std(0)
    num = (np.array([[float(r[col[c]]) for c in _NUMERIC] for r in rows]) - mean) / std
    blocks, names = [num], list(_NUMERIC)
    for c in _CATEGORICAL:
        cats = sorted({r[col[c]] for r in train_rows})
        index = {v: i for i, v in enumerate(cats)}
        onehot = np.zeros((len(rows), len(cats)))
        for i, r in enumerate(rows):
            j = index.get(r[col[c]])
            if j is not None:  # a category unseen in training stays all-zero
                onehot[i, j] = 1.0
        blocks.append(onehot)
        names += [f"{c}={v}" for v in cats]
    return np.concatenate(blocks, 1), names


def adult_feature_names(root=None) -> list[str]:
    """Names of the columns of the ``x`` returned by :func:`load_adult` (107 of them)."""
    train = _load_split(root, "train")
    return _encode(train[:1], train)[1]


def load_adult(root=None, split: str = "train", *, subgroup: str = "sex"):
    """UCI Adult as tensors, with a subgroup id per row.

    Parameters
    ----------
    root : path, optional
        Data folder holding ``adult/adult.data.gz`` and ``adult/adult.test.gz``.
    split : {"train", "test"}
        32,561 training rows or 16,281 test rows.
    subgroup : {"sex", "race"}
        The recorded attribute returned as ``group`` (names in :data:`GROUP_NAMES`).

    Returns
    -------
    x : Tensor of shape (n, 107), float32
        Standardised numeric columns, then one-hot categorical columns
        (:func:`adult_feature_names`). The subgroup attributes are among the features.
    y : Tensor of shape (n,), int64
        1 for income above 50K.
    group : Tensor of shape (n,), int64
        Index of the row's value in ``GROUP_NAMES[subgroup]``.

    Raises
    ------
    DatasetFileError
        If a file fails its MD5 check or cannot be parsed.
    FileNotFoundError
        If a file is missing.

    References
    ----------
    B. Becker and R. Kohavi, "Adult", UCI Machine Learning Repository, 1996,
    https://doi.org/10.24432/C5XW20.

    Examples
    --------
    >>> x, y, group = load_adult(split="test", subgroup="sex")  # doctest: +SKIP
    >>> x.shape, torch.bincount(group).tolist()  # doctest: +SKIP
    (torch.Size([16281, 107]), [5421, 10860])
    """
    split = check_option(split, "split", "load_adult", ("train", "test"))
    subgroup = check_option(subgroup, "subgroup", "load_adult", tuple(GROUP_NAMES))
    train = _load_split(root, "train")
    rows = train if split == "train" else _load_split(root, "test")
    x, _ = _encode(rows, train)
    y = np.array([r[-1].rstrip(".") == ">50K" for r in rows], dtype=np.int64)
    index = {v: i for i, v in enumerate(GROUP_NAMES[subgroup])}
    col = _COLUMNS.index(subgroup)
    group = np.array([index[r[col]] for r in rows], dtype=np.int64)
    return torch.from_numpy(x).float(), torch.from_numpy(y), torch.from_numpy(group)
