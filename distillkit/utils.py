"""Small helpers for notebooks: seeding and device choice.

The library itself never calls these: every random function takes a ``generator`` and
all computation follows the device of its input data.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ._validation import check_int

__all__ = ["seed_everything", "default_device"]


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for notebooks and scripts).

    Parameters
    ----------
    seed : int
        The seed for Python's, NumPy's and PyTorch's global generators.

    Examples
    --------
    >>> seed_everything(0)
    """
    seed = check_int(seed, "seed", "seed_everything", low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``. For notebooks; the library never calls it."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
