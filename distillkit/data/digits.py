"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with scikit-learn)."""

from __future__ import annotations

import torch

from .._validation import check_option

__all__ = ["load_digits"]


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Load the digits as images.

    The 1,797 images are split once, deterministically, into a stratified training part
    (1,352 images) and a test part (445 images): within each class, every fourth
    image in file order goes to the test part. ``split="all"`` returns everything.

    Parameters
    ----------
    split : {"train", "test", "all"}
        The training part, the test part, or all 1,797 images.

    Returns
    -------
    x : Tensor of shape (n, 1, 8, 8), float32 in [0, 1]
    y : Tensor of shape (n,), int64

    Examples
    --------
    >>> x, y = load_digits("train")
    >>> tuple(x.shape), int(y.max())
    ((1352, 1, 8, 8), 9)
    """
    split = check_option(split, "split", "load_digits", ("train", "test", "all"))
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (n, 8, 8) -> (n, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    if split == "all":
        return x, y
    rank = torch.zeros_like(y)
    for c in y.unique():
        members = (y == c).nonzero().squeeze(1)
        rank[members] = torch.arange(members.numel())
    is_test = rank % 4 == 3
    keep = is_test if split == "test" else ~is_test
    return x[keep].contiguous(), y[keep].contiguous()
