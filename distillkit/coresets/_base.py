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

from .._validation import (
    check_bool,
    check_budget,
    check_int,
    check_labels,
    check_model,
    check_option,
    check_tensor,
    check_xy,
    fail,
)
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
    """Decorator adding a method to :data:`METHODS` under ``name``.

    Parameters
    ----------
    name : str
        The name :func:`select` will know the method by.
    """

    def wrap(fn):
        METHODS[name] = fn
        return fn

    return wrap


def select(method: str, x: torch.Tensor, y: torch.Tensor, budget: int, **options) -> Selection:
    """Run the registered coreset method ``method``.

    Parameters
    ----------
    method : str
        A name registered in :data:`METHODS` ("herding", "k_center_greedy", "el2n", ...).
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep, in [1, n].
    **options
        Keyword options of the method (``per_class``, ``features``, ``model``, ``generator``,
        ``progress`` and its own).

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

    Parameters
    ----------
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        The total to split, in [1, n].
    mode : {"balanced", "proportional"}
        Equal quotas per class, or quotas proportional to the class sizes.
    func : str
        The public function named in error messages (the caller's).

    Examples
    --------
    >>> class_budgets(torch.tensor([0, 0, 0, 1, 1, 2]), 4)
    {0: 2, 1: 1, 2: 1}
    """
    mode = check_option(mode, "mode", func, ("balanced", "proportional"))
    _check_y(y, func)
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


def _check_y(y, func: str, n: int | None = None) -> torch.Tensor:
    """1-D int64 non-negative labels, at least one (``n``: the length they must have)."""
    y = check_tensor(y, "y", func, ndim=1, floating=False, min_rows=1)
    if y.dtype != torch.int64:
        fail(func, "y", "an int64 tensor of class labels", y, error=TypeError)
    if n is not None and y.shape[0] != n:
        fail(func, "y", f"a tensor with one label per score ({n})", y)
    if int(y.min()) < 0:
        fail(func, "y", "non-negative class labels", f"<a minimum label of {int(y.min())}>")
    return y


def select_by_score(scores: torch.Tensor, budget: int, *, y: torch.Tensor | None = None, order: str = "top",
                    per_class: bool | None = None) -> torch.Tensor:
    """Indices of the ``budget`` highest (``order="top"``) or lowest scores.

    With labels ``y`` and ``per_class`` true (the default when ``y`` is given), each class
    contributes exactly its balanced budget (see :func:`class_budgets`). Ties are broken by
    index (stable sort), so the result is deterministic. Indices come back sorted from the
    most to the least preferred score. Infinite scores are allowed (``inf`` ranks first for
    ``"top"`` and last for ``"bottom"``, e.g. a DeepFool distance when no boundary was found);
    NaN is an error.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        One score per example; NaN is an error.
    budget : int
        Number of indices to return, in [1, n].
    y : Tensor of shape (n,), int64, optional
        Labels, for exact per-class budgets.
    order : {"top", "bottom"}
        Keep the highest or the lowest scores.
    per_class : bool, optional
        Select within each class (default: whenever ``y`` is given).

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
    if per_class is not None:
        check_bool(per_class, "per_class", func)
    budget = check_budget(budget, scores.shape[0], func)
    scores = scores.detach().cpu()
    ranking = torch.sort(scores, descending=(order == "top"), stable=True).indices
    if y is None or per_class is False:
        return ranking[:budget].clone()
    y = _check_y(y, func, scores.shape[0]).cpu()
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


@torch.no_grad()
def _output_linear(model: nn.Module, x1: torch.Tensor, func: str) -> nn.Linear:
    """The model's output layer, found from a forward pass on ``x1``: the ``nn.Linear`` that
    runs last, whose output is the model's output.

    Registration order is not forward order (a network may declare its head before its
    body), so the order of ``model.modules()`` is never used. A model whose output is not
    the output of an ``nn.Linear`` (a non-linearity, a scaling or a second branch after it)
    has no head to read, and is refused.
    """
    calls = []  # (module, output) of every nn.Linear call, in forward order
    handles = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, out)))
               for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    try:
        model.eval()
        out = model(x1)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    expectation = ("a classifier whose output is the output of an nn.Linear layer (the head whose input is the "
                   "embedding)")
    if not calls:
        fail(func, "model", expectation, "<a model that runs no nn.Linear layer>", error=TypeError)
    head, head_out = calls[-1]
    same = head_out is out or (isinstance(out, torch.Tensor) and out.shape == head_out.shape
                               and bool(torch.equal(out, head_out)))
    if not same:
        fail(func, "model", expectation, f"<a model whose output is not that of its last nn.Linear "
             f"({type(head).__name__}({head.in_features}, {head.out_features}))>")
    return head


def _check_model_input(model, x, func: str) -> torch.Tensor:
    """``model`` is a module that can read ``x`` (its dtype and device); ``x`` has rows."""
    check_model(model, func)
    x = check_tensor(x, "x", func, floating=True, min_rows=1, min_ndim=2, half=False)
    check_model(model, func, like=x)
    return x


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features of ``model`` for ``x``, shape (n, d), computed in batches.

    Uses ``model.embed`` when the model has one, otherwise the input of its output layer:
    the ``nn.Linear`` that runs last in a forward pass and whose output is the model's output
    (found with forward hooks, whatever order the layers were declared in). A model whose
    output is not the output of an ``nn.Linear`` is refused. Runs on the device of ``x``; eval
    mode (the model's mode is restored).

    Parameters
    ----------
    model : nn.Module
        The network whose penultimate features are taken.
    x : Tensor of shape (n, ...)
        Inputs, on the device the model runs on.
    batch_size : int
        Examples per forward pass.
    """
    return _embed(model, x, batch_size, "embed")


def _embed(model, x, batch_size, func):
    x = _check_model_input(model, x, func)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    with torch.no_grad():
        return _embed_core(model, x, batch_size, func)


def _embed_core(model, x, batch_size, func):
    was_training = model.training
    outs = []
    if hasattr(model, "embed"):
        model.eval()
        try:
            for start in range(0, x.shape[0], batch_size):
                outs.append(model.embed(x[start:start + batch_size]))
        finally:
            model.train(was_training)
    else:
        head = _output_linear(model, x[:1], func)
        captured = []
        handle = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        model.eval()
        try:
            for start in range(0, x.shape[0], batch_size):
                captured.clear()
                model(x[start:start + batch_size])
                outs.append(captured[-1])
        finally:
            handle.remove()
            model.train(was_training)
    return torch.cat(outs).flatten(1)


def gradient_embedding(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, kind: str = "full",
                       batch_size: int = 512) -> torch.Tensor:
    """Per-example gradient of the cross-entropy w.r.t. the output layer, in closed form.

    For logits ``z = W h + b`` and ``p = softmax(z)``, the gradient of ``CE(z, y)`` is
    ``dL/db = p - e_y`` and ``dL/dW = (p - e_y) h^T``. ``kind="bias"`` returns the former,
    shape (n, C); ``kind="full"`` returns both flattened, shape (n, C * (d + 1)). Without
    ``y`` the predicted label is used (as in BADGE). The output layer is the ``nn.Linear``
    whose output is the model's output, found from a forward pass (see :func:`embed`); labels
    must be outputs of the model (``y < C``). Computed in batches on x's device.

    Parameters
    ----------
    model : nn.Module
        A classifier whose last layer is an ``nn.Linear``.
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64, optional
        Labels; default the model's predicted labels.
    kind : {"full", "bias"}
        The gradient of weights and bias, flattened, or of the bias only.
    batch_size : int
        Examples per forward pass.
    """
    return _gradient_embedding(model, x, y, kind, batch_size, "gradient_embedding")


def _gradient_embedding(model, x, y, kind, batch_size, func):
    kind = check_option(kind, "kind", func, ("bias", "full"))
    x = _check_model_input(model, x, func)
    if y is not None:
        x, y = check_xy(x, y, func)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    with torch.no_grad():
        head = _output_linear(model, x[:1], func)
        if y is not None:
            check_labels(y, head.out_features, func, f"the model has {head.out_features} outputs")
        was_training = model.training
        h = _embed_core(model, x, batch_size, func)  # (n, d)
        model.eval()
        outs = []
        try:
            for start in range(0, x.shape[0], batch_size):
                hb = h[start:start + batch_size]
                p = torch.softmax(head(hb), dim=1)  # (b, C)
                target = p.argmax(1) if y is None else y[start:start + batch_size].to(p.device)
                delta = p.clone()
                delta[torch.arange(p.shape[0], device=p.device), target] -= 1.0  # p - e_y
                if kind == "bias":
                    outs.append(delta)
                else:
                    grad_w = (delta.unsqueeze(2) * hb.unsqueeze(1)).flatten(1)  # (b, C*d)
                    outs.append(torch.cat([grad_w, delta], 1))  # (b, C*d + C)
        finally:
            model.train(was_training)
    return torch.cat(outs)


def resolve_features(x: torch.Tensor, features, model, func: str, *, kind: str = "embedding", y=None) -> torch.Tensor:
    """The feature matrix a method works in: ``features`` if given, else computed from
    ``model`` (``kind="embedding"`` or ``"gradient"``), else the flattened inputs.

    Errors name ``func``, the public function the caller used.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    features : Tensor of shape (n, d) or None
        Features given by the caller, used as they are.
    model : nn.Module or None
        Used to compute features when none are given.
    func : str
        The public function named in error messages.
    kind : {"embedding", "gradient"}
        Which features the model gives: its penultimate embedding or the gradient embedding.
    y : Tensor of shape (n,), optional
        Labels for the gradient embedding.
    """
    kind = check_option(kind, "kind", func, ("embedding", "gradient"))
    x = check_tensor(x, "x", func, floating=True, min_rows=1, min_ndim=2, half=False)
    if features is not None:
        features = check_tensor(features, "features", func, ndim=2, floating=True, half=False)
        if features.shape[0] != x.shape[0]:
            fail(func, "features", f"a tensor with one row per example ({x.shape[0]})", features)
        return features
    if model is not None:
        if not isinstance(model, nn.Module):
            fail(func, "model", "an nn.Module or None", model, error=TypeError)
        if kind == "gradient":
            return _gradient_embedding(model, x, y, "full", 512, func)
        return _embed(model, x, 512, func)
    return x.flatten(1)


def make_selection(indices, *, method: str, weights=None, scores=None, gains=None, info=None, dtype=torch.float32) -> Selection:
    """Build a :class:`~distillkit.types.Selection` with CPU int64 indices and float weights.

    ``indices`` are integers >= 0 (a tensor, list or tuple; floats are refused, not truncated);
    ``weights``, when given, one finite real number per index.

    Parameters
    ----------
    indices : Tensor, list or tuple of int
        Chosen rows, in selection order.
    method : str
        Name of the method that chose them.
    weights : sequence of float, optional
        One weight per index; default all ones.
    scores : Tensor of shape (n,), optional
        The scores the method ranked by.
    gains : Tensor of shape (k,), optional
        The gain of each pick, in selection order.
    info : dict, optional
        Anything else the method reports.
    dtype : torch.dtype
        Floating dtype of the weights.
    """
    func = "make_selection"
    if not isinstance(method, str):
        fail(func, "method", "a str", method, error=TypeError)
    idx = _as_tensor(indices, "indices", func)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        fail(func, "indices", "integer row indices (an integer tensor or a list of ints)", idx, error=TypeError)
    idx = idx.detach().cpu().to(torch.int64).reshape(-1)
    if idx.numel() and int(idx.min()) < 0:
        fail(func, "indices", "non-negative row indices", f"<a minimum index of {int(idx.min())}>")
    if weights is None:
        w = torch.ones(idx.numel(), dtype=dtype)
    else:
        w = _as_tensor(weights, "weights", func)
        w = check_tensor(w.reshape(-1) if w.dim() else w.reshape(1), "weights", func)
        if w.numel() != idx.numel():
            fail(func, "weights", f"one weight per index ({idx.numel()})", w)
        w = w.detach().cpu().to(dtype)
    return Selection(
        indices=idx,
        weights=w,
        scores=None if scores is None else scores.detach().cpu(),
        gains=None if gains is None else torch.as_tensor(gains).detach().cpu(),
        method=method,
        info=dict(info or {}),
    )


def _as_tensor(value, param: str, func: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            fail(func, param, "a tensor with data (not on the meta device)", value)
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        fail(func, param, "a tensor or a list of numbers", value, error=TypeError)


def check_common(x, y, budget, func: str, *, per_class: bool, progress=False):
    """Validate the common head ``(x, y, budget, per_class, progress)``; returns ``(x, y, budget)``.

    ``x`` must have one row per example and at least 2 dimensions, float32 or float64."""
    x, y = check_xy(x, y, func, min_ndim=2, half=False)
    check_bool(progress, "progress", func)
    if not isinstance(per_class, bool):
        fail(func, "per_class", "a bool", per_class, error=TypeError)
    budget = check_budget(budget, x.shape[0], func)
    if per_class:
        class_budgets(y, budget, func=func)  # raises if a class is too small
    return x, y, budget
