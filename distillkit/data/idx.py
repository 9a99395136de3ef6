"""MNIST and Fashion-MNIST from their original IDX gzip files, verified by MD5.

Root resolution: the ``root`` argument, then the ``DISTILLKIT_DATA`` environment
variable, then a per-user cache folder (``$XDG_CACHE_HOME/distillkit`` or
``~/.cache/distillkit``). Files live in the torchvision layout ``<root>/MNIST/raw/`` and
``<root>/FashionMNIST/raw/``.

A file that is present but fails its MD5 check (truncated, corrupt) raises
:class:`DatasetFileError` naming the file and the fix; it is never silently downloaded
again over the user's data. A missing file is downloaded from the dataset's official
mirrors with a progress bar into a temporary ``.part`` file, verified, then moved into
place. Each file has an overall deadline (``deadline`` seconds, 600 by default): a mirror
that trickles bytes is abandoned when it passes, and the ``.part`` file is removed on every
failure path (an error, a wrong MD5, the deadline, an interrupt).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pathlib
import shutil
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import torch

from .._validation import check_bool, check_float, check_option, describe, fail

__all__ = ["DatasetFileError", "load_mnist", "load_fashion_mnist", "resolve_root"]


class DatasetFileError(RuntimeError):
    """A dataset file exists but is not the file it should be (wrong MD5, bad header)."""


_FILES = {
    "MNIST": {
        "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
        "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    },
    "FashionMNIST": {
        "train": (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                  ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")),
        "test": (("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
    },
}

MIRRORS = {
    "MNIST": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "FashionMNIST": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}


def resolve_root(root=None) -> pathlib.Path:
    """The data folder: ``root``, else ``$DISTILLKIT_DATA``, else the per-user cache.

    Parameters
    ----------
    root : path, optional
        The data folder to use; None looks at ``$DISTILLKIT_DATA``, then the per-user cache.
    """
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            fail("resolve_root", "root", "a path (str or os.PathLike) or None", root, error=TypeError)
        return pathlib.Path(root).expanduser()
    env = os.environ.get("DISTILLKIT_DATA")
    if env:
        return pathlib.Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "distillkit"


def _md5(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_READ_TIMEOUT = 30.0  # seconds one network read may block, at most


class _DeadlinePassed(Exception):
    pass


def _set_read_timeout(response, seconds: float) -> None:
    """Bound the next socket read by ``seconds`` (best effort: http.client keeps its socket private)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 1e-3))


def _download_one(url: str, tmp: pathlib.Path, name: str, deadline: float, progress: bool) -> None:
    """Write ``url`` into ``tmp``; raise ``_DeadlinePassed`` once ``deadline`` seconds have gone by."""
    from tqdm.auto import tqdm

    end = time.monotonic() + deadline
    received = 0
    with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=min(_READ_TIMEOUT, deadline)) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise _DeadlinePassed(f"no complete file within the deadline of {deadline:g} s "
                                          f"({received} bytes received)")
                _set_read_timeout(response, min(_READ_TIMEOUT, left))
                try:
                    chunk = response.read1(1 << 16)  # returns what has arrived, so the deadline is checked often
                except TimeoutError:
                    if time.monotonic() >= end:
                        raise _DeadlinePassed(f"no complete file within the deadline of {deadline:g} s "
                                              f"({received} bytes received)") from None
                    raise
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise _DeadlinePassed(f"the connection closed after {received} of {total} bytes")


def _download(name: str, md5: str, dest: pathlib.Path, mirrors, progress: bool, deadline: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        fd, tmp_name = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = pathlib.Path(tmp_name)
        try:
            _download_one(url, tmp, name, deadline, progress)
            got = _md5(tmp)
            if got != md5:
                errors.append(f"{url}: MD5 {got}, expected {md5}")
                continue
            shutil.move(str(tmp), dest)
            return
        except (_DeadlinePassed, urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            # ValueError: a malformed URL ("unknown url type"); HTTPException: a broken response
            errors.append(f"{url}: {exc}")
        finally:  # every path that did not move the file into place, interrupts included
            if tmp.exists():
                tmp.unlink()
    raise DatasetFileError(
        f"Could not download {name} into {dest.parent}. Tried: " + "; ".join(errors)
        + f". Copy the original file there by hand (MD5 {md5}) or set DISTILLKIT_DATA to a folder that has it."
    )


def _fetch(dataset: str, name: str, md5: str, root: pathlib.Path, download: bool, mirrors, progress: bool,
           deadline: float):
    path = root / dataset / "raw" / name
    if path.exists():
        got = _md5(path)
        if got != md5:
            raise DatasetFileError(
                f"The file {path} is corrupt or truncated: its MD5 is {got}, expected {md5}. "
                f"Delete it and call again to download a fresh copy, or replace it with the original file."
            )
        return path
    if not download:
        raise FileNotFoundError(
            f"{path} does not exist. Call with download=True, or set DISTILLKIT_DATA (or root=) to a folder "
            f"holding {dataset}/raw/{name}."
        )
    _download(name, md5, path, mirrors if mirrors is not None else MIRRORS[dataset], progress, deadline)
    return path


def _read_idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DatasetFileError(f"The file {path} is not an IDX file of unsigned bytes. Replace it with the original file.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise DatasetFileError(f"The file {path} holds {len(data) - offset} values, its header says {expected}. Replace it with the original file.")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _check_mirrors(mirrors, func: str):
    """None, one base URL as a str, or a non-empty list or tuple of str."""
    expectation = "None, a base URL (str) or a non-empty list or tuple of base URLs"
    if mirrors is None:
        return None
    if isinstance(mirrors, str):
        mirrors = (mirrors,)  # one mirror, not a sequence of one-letter URLs
    if not isinstance(mirrors, (list, tuple)):
        fail(func, "mirrors", expectation, mirrors, error=TypeError)
    if not mirrors:
        fail(func, "mirrors", expectation, "<an empty sequence>")
    for item in mirrors:
        if not isinstance(item, str):
            fail(func, "mirrors", expectation, f"<a sequence holding {describe(item)}>", error=TypeError)
    return tuple(mirrors)


def _load(dataset: str, func: str, root, split: str, download: bool, mirrors, progress: bool, deadline):
    split = check_option(split, "split", func, ("train", "test"))
    download = check_bool(download, "download", func)
    progress = check_bool(progress, "progress", func)
    mirrors = _check_mirrors(mirrors, func)
    deadline = check_float(deadline, "deadline", func, low=0.0, low_open=True)
    base = resolve_root(root)
    (img_name, img_md5), (lbl_name, lbl_md5) = _FILES[dataset][split]
    img_path = _fetch(dataset, img_name, img_md5, base, download, mirrors, progress, deadline)
    lbl_path = _fetch(dataset, lbl_name, lbl_md5, base, download, mirrors, progress, deadline)
    images = _read_idx(img_path)  # (n, 28, 28) uint8
    labels = _read_idx(lbl_path)  # (n,) uint8
    x = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)  # (n, 28, 28) -> (n, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def load_mnist(root=None, split: str = "train", *, download: bool = True, mirrors=None, progress: bool = True,
               deadline: float = 600.0):
    """MNIST (LeCun et al., 1998) as tensors.

    Parameters
    ----------
    root : path, optional
        Data folder; see the module docstring for the fallback order.
    split : {"train", "test"}
        The 60,000 training or the 10,000 test images.
    download : bool
        Download missing files from the official mirrors (never over an existing file).
    mirrors : str or sequence of str, optional
        Base URLs to try, in order, instead of the official ones; a single str is one mirror.
    progress : bool
        Show a progress bar while downloading.
    deadline : float
        Seconds one file may take to download from one mirror (600 by default, > 0): a
        slower mirror is abandoned, its ``.part`` file removed, and the next one tried. Each
        network read is also bounded by ``min(30, deadline)`` seconds.

    Raises
    ------
    DatasetFileError
        A present file fails its MD5 check, or no mirror delivered a correct file in time.
    FileNotFoundError
        A file is missing and ``download=False``.

    Returns
    -------
    x : Tensor of shape (n, 1, 28, 28), float32 in [0, 1]
    y : Tensor of shape (n,), int64
    """
    return _load("MNIST", "load_mnist", root, split, download, mirrors, progress, deadline)


def load_fashion_mnist(root=None, split: str = "train", *, download: bool = True, mirrors=None, progress: bool = True,
                       deadline: float = 600.0):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) as tensors; see :func:`load_mnist`.

    Parameters
    ----------
    root : path, optional
        Data folder, as in :func:`load_mnist`.
    split : {"train", "test"}
        The 60,000 training or the 10,000 test images.
    download : bool
        Download missing files, as in :func:`load_mnist`.
    mirrors : str or sequence of str, optional
        Base URLs to try instead of the official ones.
    progress : bool
        Show a progress bar while downloading.
    deadline : float
        Seconds one file may take from one mirror, as in :func:`load_mnist`.
    """
    return _load("FashionMNIST", "load_fashion_mnist", root, split, download, mirrors, progress, deadline)
