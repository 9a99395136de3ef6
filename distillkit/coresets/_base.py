"""Shared machinery of every coreset method: the registry, exact per-class budgets,
selection by score, and feature spaces computed from a model.

Every method has the same head::

    method(x, y, budget, *, per_class=True, features=None, model=None, generator=None,
           progress=False, **options) -> Selection

``x`` are the inputs, ``features`` an optional precomputed feature matrix (n, d); when it
is not given the method computes what it needs from ``model`` (penultimate embeddings or
last-layer gradient embeddings, in batches on the data's device) or falls back to the
flattened inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._validation import check_budget, check_int, check_option, check_tensor, check_xy, fail
from ..types import Selection

__all__ = [
    "METHODS",
    "register",
    "select",
    "class_budgets",
    "select_by_score",
    "embed",
    "gradient_embedding",
    "resolve_features",
    "make_selection",
]

METHODS: dict[str, Callable[..., Selection]] = {}


def register(name: str):
    """Decorator adding a method to :data:`METHODS` under ``name``."""

    def wrap(fn):
        METHODS[name] = fn
        return fn

    return wrap


def select(method: str, x: torch.Tensor, y: torch.Tensor, budget: int, **options) -> Selection:
    """Run the registered coreset method ``method``.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0)); y = torch.arange(100) % 2
    >>> len(select("herding", x, y, 10))
    10
    """
    if not isinstance(method, str):
        fail("select", "method", "one of " + ", ".join(repr(m) for m in sorted(METHODS)), method, error=TypeError)
    if method not in METHODS:
        fail("select", "method", "one of " + ", ".join(repr(m) for m in sorted(METHODS)), method)
    return METHODS[method](x, y, budget, **options)


def class_budgets(y: torch.Tensor, budget: int, *, mode: str = "balanced", func: str = "class_budgets") -> dict[int, int]:
    """Split ``budget`` over the classes of ``y`` exactly (largest-remainder apportioning).

    ``mode="balanced"`` gives every class the quota ``budget / n_classes`` ("images per
    class"); ``mode="proportional"`` gives class c the quota ``budget * n_c / n``. Each class
    receives the floor of its quota, and the remaining units go to the largest fractional
    remainders (ties: larger class first, then smaller label). The budgets sum to
    ``budget`` exactly; a class smaller than its budget raises an error.

    Examples
    --------
    >>> class_budgets(torch.tensor([0, 0, 0, 1, 1, 2]), 4)
    {0: 2, 1: 1, 2: 1}
    """
    mode = check_option(mode, "mode", func, ("balanced", "proportional"))
    classes, counts = torch.unique(y, return_counts=True)
    classes, counts = classes.tolist(), counts.tolist()
    n = sum(counts)
    budget = check_budget(budget, n, func)
    if mode == "balanced":
        quotas = [budget / len(classes)] * len(classes)
    else:
        quotas = [budget * c / n for c in counts]
    base = [int(q) for q in quotas]
    rest = budget - sum(base)
    order = sorted(range(len(classes)), key=lambda i: (-(quotas[i] - base[i]), -counts[i], classes[i]))
    for i in order[:rest]:
        base[i] += 1
    for c, k, n_c in zip(classes, base, counts):
        if k > n_c:
            fail(func, "budget", f"at most what every class can supply with per_class=True (class {c} has {n_c} "
                 f"examples but its share is {k})", budget)
    return {c: k for c, k in zip(classes, base)}


def select_by_score(scores: torch.Tensor, budget: int, *, y: torch.Tensor | None = None, order: str = "top",
                    per_class: bool | None = None) -> torch.Tensor:
    """Indices of the ``budget`` highest (``order="top"``) or lowest scores.

    With labels ``y`` and ``per_class`` true (the default when ``y`` is given), each class
    contributes exactly its balanced budget (see :func:`class_budgets`). Ties are broken by
    index (stable sort), so the result is deterministic. Indices come back sorted from the
    most to the least preferred score. Infinite scores are allowed (``inf`` ranks first for
    ``"top"`` and last for ``"bottom"``, e.g. a DeepFool distance when no boundary was found);
    NaN is an error.

    Examples
    --------
    >>> select_by_score(torch.tensor([0.1, 0.9, 0.5, 0.9]), 2).tolist()
    [1, 3]
    """
    func = "select_by_score"
    scores = check_tensor(scores, "scores", func, ndim=1, floating=True, finite=False)
    n_nan = int(torch.isnan(scores).sum())
    if n_nan:
        fail(func, "scores", "scores without NaN (infinite scores are ranked)", f"<a tensor with {n_nan} NaN>")
    order = check_option(order, "order", func, ("top", "bottom"))
    budget = check_budget(budget, scores.shape[0], func)
    scores = scores.detach().cpu()
    ranking = torch.sort(scores, descending=(order == "top"), stable=True).indices
    if y is None or per_class is False:
        return ranking[:budget].clone()
    _, y = check_xy(scores.new_empty(scores.shape[0], 0), y, func)  # y against the length only: scores may be inf
    y = y.cpu()
    budgets = class_budgets(y, budget, func=func)
    taken = {c: 0 for c in budgets}
    keep = []
    for i in ranking.tolist():
        c = int(y[i])
        if taken[c] < budgets[c]:
            taken[c] += 1
            keep.append(i)
            if len(keep) == budget:
                break
    return torch.tensor(keep, dtype=torch.int64)


def _last_linear(model: nn.Module) -> nn.Linear:
    # distillkit's networks name their head `classifier`; registration order is not
    # forward order (MLP registers its head before its body), so prefer the name.
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return head
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        fail("embed", "model", "a network whose last layer is an nn.Linear", model, error=TypeError)
    return last


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features of ``model`` for ``x``, shape (n, d), computed in batches.

    Uses ``model.embed`` when the model has one, otherwise the input of its last
    ``nn.Linear`` (captured by a forward hook). Runs on the device of ``x``; eval mode.
    """
    batch_size = check_int(batch_size, "batch_size", "embed", low=1)
    was_training = model.training
    model.eval()
    outs = []
    if hasattr(model, "embed"):
        for start in range(0, x.shape[0], batch_size):
            outs.append(model.embed(x[start:start + batch_size]))
    else:
        captured = []
        handle = _last_linear(model).register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            for start in range(0, x.shape[0], batch_size):
                model(x[start:start + batch_size])
                outs.append(captured.pop())
        finally:
            handle.remove()
    model.train(was_training)
    return torch.cat(outs).flatten(1)


@torch.no_grad()
def gradient_embedding(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, kind: str = "full",
                       batch_size: int = 512) -> torch.Tensor:
    """Per-example gradient of the cross-entropy w.r.t. the last linear layer, in closed form.

    For logits ``z = W h + b`` and ``p = softmax(z)``, the gradient of ``CE(z, y)`` is
    ``dL/db = p - e_y`` and ``dL/dW = (p - e_y) h^T``. ``kind="bias"`` returns the former,
    shape (n, C); ``kind="full"`` returns both flattened, shape (n, C * (d + 1)). Without
    ``y`` the predicted label is used (as in BADGE). Computed in batches on x's device.
    """
    kind = check_option(kind, "kind", "gradient_embedding", ("bias", "full"))
    was_training = model.training
    model.eval()
    h = embed(model, x, batch_size=batch_size)  # (n, d)
    head = _last_linear(model)
    outs = []
    for start in range(0, x.shape[0], batch_size):
        hb = h[start:start + batch_size]
        p = torch.softmax(head(hb), dim=1)  # (b, C)
        target = p.argmax(1) if y is None else y[start:start + batch_size].to(p.device)
        delta = p.clone()
        delta[torch.arange(p.shape[0], device=p.device), target] -= 1.0  # p - e_y
        if kind == "bias":
            outs.append(delta)
        else:
            outs.append(torch.cat([(delta.unsqueeze(2) * hb.unsqueeze(1)).flatten(1), delta], 1))  # (b, C*d + C)
    model.train(was_training)
    return torch.cat(outs)


def resolve_features(x: torch.Tensor, features, model, func: str, *, kind: str = "embedding", y=None) -> torch.Tensor:
    """The feature matrix a method works in: ``features`` if given, else computed from
    ``model`` (``kind="embedding"`` or ``"gradient"``), else the flattened inputs."""
    if features is not None:
        features = check_tensor(features, "features", func, ndim=2, floating=True)
        if features.shape[0] != x.shape[0]:
            fail(func, "features", f"a tensor with one row per example ({x.shape[0]})", features)
        return features
    if model is not None:
        if not isinstance(model, nn.Module):
            fail(func, "model", "an nn.Module or None", model, error=TypeError)
        if kind == "gradient":
            return gradient_embedding(model, x, y)
        return embed(model, x)
    return x.flatten(1)


def make_selection(indices, *, method: str, weights=None, scores=None, gains=None, info=None, dtype=torch.float32) -> Selection:
    """Build a :class:`~distillkit.types.Selection` with CPU int64 indices and float weights."""
    idx = torch.as_tensor(indices, dtype=torch.int64).detach().cpu().reshape(-1)
    if weights is None:
        w = torch.ones(idx.numel(), dtype=dtype)
    else:
        w = torch.as_tensor(weights).detach().cpu().to(dtype).reshape(-1)
    return Selection(
        indices=idx,
        weights=w,
        scores=None if scores is None else scores.detach().cpu(),
        gains=None if gains is None else torch.as_tensor(gains).detach().cpu(),
        method=method,
        info=dict(info or {}),
    )


def check_common(x, y, budget, func: str, *, per_class: bool):
    """Validate the common head ``(x, y, budget, per_class)``; returns ``(x, y, budget)``."""
    x, y = check_xy(x, y, func)
    if not isinstance(per_class, bool):
        fail(func, "per_class", "a bool", per_class, error=TypeError)
    budget = check_budget(budget, x.shape[0], func)
    if per_class:
        class_budgets(y, budget, func=func)  # raises if a class is too small
    return x, y, budget
