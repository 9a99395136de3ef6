"""Random selection: the baseline every coreset method must beat."""

from __future__ import annotations

import torch

from .._validation import check_generator
from ._base import check_common, class_budgets, make_selection, register, resolve_features

__all__ = ["random_selection"]


@register("random")
def random_selection(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False):
    """A uniformly random subset (per class with exact budgets, or globally).

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs (only their number is used).
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep, in [1, n].
    per_class : bool
        Draw within each class with exact per-class budgets (default) or from all data.
    features : Tensor, optional
        Accepted for the common head; unused.
    model : nn.Module, optional
        Accepted for the common head; unused.
    generator : torch.Generator, int or None
        Source of the draw.
    progress : bool
        Accepted for the common head; the draw is instant.

    Examples
    --------
    >>> x = torch.zeros(10, 2); y = torch.tensor([0] * 5 + [1] * 5)
    >>> sorted(random_selection(x, y, 4, generator=0).indices.tolist())  # doctest: +SKIP
    """
    x, y, budget = check_common(x, y, budget, "random_selection", per_class=per_class, progress=progress)
    gen = check_generator(generator, "random_selection")
    if features is not None:  # not used, but a caller who passes them gets them checked
        resolve_features(x, features, None, "random_selection")
    y_cpu = y.cpu()
    if not per_class:
        idx = torch.randperm(x.shape[0], generator=gen)[:budget]
    else:
        parts = []
        for c, k in class_budgets(y_cpu, budget, func="random_selection").items():
            members = (y_cpu == c).nonzero().squeeze(1)
            parts.append(members[torch.randperm(members.numel(), generator=gen)[:k]])
        idx = torch.cat(parts)
    return make_selection(idx, method="random", info={"per_class": per_class})
