"""Uncertainty coresets: keep the examples a classifier is least sure about.

Coleman et al., "Selection via Proxy: Efficient Data Selection for Deep Learning" (ICLR 2020)
score every example with the predicted class probabilities ``p`` (n, C) of a model, using the
three classic uncertainty measures of active learning (Settles, "Active Learning Literature
Survey", 2009):

* least confidence  ``1 - max_c p_c``,
* entropy           ``-sum_c p_c log p_c``  (with ``0 log 0 = 0``),
* margin            ``1 - (p_(1) - p_(2))``, the gap between the two largest probabilities.

All three grow with uncertainty, and the examples with the **highest** scores are kept, in
balanced (per-class) and global mode alike. The probabilities come from ``probs=`` when given,
else from ``model`` (softmax of its logits, in batches on the data's device), else from a
proxy: an MLP with one hidden layer of 128 units trained on the data for ``proxy_epochs``
epochs, seeded by ``generator`` (the proxy idea of the paper, :mod:`distillkit.coresets.proxy`;
DeepCore also trains one).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_bool, check_generator, fail
from ._base import check_common, make_selection, register, resolve_features, select_by_score
from .proxy import _check_probs, _fit_proxy, _predict_proba, predict_proba

__all__ = [
    "least_confidence_scores",
    "entropy_scores",
    "margin_scores",
    "least_confidence",
    "entropy",
    "margin",
]


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    """Least confidence ``1 - max_c p_c`` of every example (higher = less confident).

    Parameters
    ----------
    probs : Tensor of shape (n, n_classes)
        Predicted class probabilities: non-negative, finite, rows summing to 1.

    Returns
    -------
    Tensor of shape (n,)

    References
    ----------
    Coleman et al., "Selection via Proxy", ICLR 2020; Settles, "Active Learning Literature Survey", 2009.

    Examples
    --------
    >>> least_confidence_scores(torch.tensor([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]]))
    tensor([0.5000, 0.0000])
    """
    probs = _check_probs(probs, "least_confidence_scores")
    return 1.0 - probs.max(dim=1).values


def entropy_scores(probs: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``-sum_c p_c log p_c`` in nats (``0 log 0 = 0``).

    Parameters
    ----------
    probs : Tensor of shape (n, n_classes)
        Predicted class probabilities: non-negative, finite, rows summing to 1.

    Returns
    -------
    Tensor of shape (n,)
        Between 0 (one-hot prediction) and ``log(n_classes)`` (uniform prediction).

    References
    ----------
    Coleman et al., "Selection via Proxy", ICLR 2020; Settles, "Active Learning Literature Survey", 2009.

    Examples
    --------
    >>> entropy_scores(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    tensor([0.6931, 0.0000])
    """
    probs = _check_probs(probs, "entropy_scores")
    return 0.0 - torch.special.xlogy(probs, probs).sum(dim=1)  # 0 - s, not -s: no "-0." for certain rows


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    """One minus the margin between the two largest probabilities, ``1 - (p_(1) - p_(2))``.

    Parameters
    ----------
    probs : Tensor of shape (n, n_classes)
        Predicted class probabilities: non-negative, finite, rows summing to 1.

    Returns
    -------
    Tensor of shape (n,)
        In [0, 1]; 1 when the two most likely classes tie (higher = less confident).

    References
    ----------
    Coleman et al., "Selection via Proxy", ICLR 2020; Settles, "Active Learning Literature Survey", 2009.

    Examples
    --------
    >>> margin_scores(torch.tensor([[0.5, 0.3, 0.2]]))
    tensor([0.8000])
    """
    probs = _check_probs(probs, "margin_scores")
    top2 = probs.topk(2, dim=1).values  # (n, 2)
    return 1.0 - (top2[:, 0] - top2[:, 1])


def _probabilities(x, y, features, model, probs, proxy_epochs, generator, progress, func):
    """The (n, C) probabilities an uncertainty method scores, and where they came from."""
    if probs is not None:
        if model is not None or features is not None:
            fail(func, "probs", "None when model= or features= is given (give one source of probabilities)", probs)
        return _check_probs(probs, func, n_rows=x.shape[0]), "probs"
    space = x if features is None else resolve_features(x, features, None, func)  # what the network reads
    if model is not None:
        if not isinstance(model, nn.Module):
            fail(func, "model", "an nn.Module or None", model, error=TypeError)
        return _check_probs(_predict_proba(model, space, 512, func), func, "model"), "model"
    proxy = _fit_proxy(space, y, proxy_epochs, generator, func, progress)
    return predict_proba(proxy, space), f"proxy MLP, {proxy_epochs} epochs"


_SCORES = {"least_confidence": least_confidence_scores, "entropy": entropy_scores, "margin": margin_scores}


def _uncertainty(kind, x, y, budget, per_class, features, model, generator, progress, probs, proxy_epochs):
    x, y, budget = check_common(x, y, budget, kind, per_class=per_class, progress=progress)
    progress = check_bool(progress, "progress", kind)
    if model is not None or probs is not None:
        check_generator(generator, kind)  # validated even when nothing is random
    p, source = _probabilities(x, y, features, model, probs, proxy_epochs, generator, progress, kind)
    scores = _SCORES[kind](p)
    idx = select_by_score(scores, budget, y=y, order="top", per_class=per_class)
    return make_selection(idx, method=kind, scores=scores, info={"per_class": per_class, "probabilities": source})


_HEAD_DOC = """
    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep (exact per class when ``per_class``).
    per_class : bool
        Balanced budgets per class (largest remainder) or one global ranking; either way the
        highest scores are kept.
    features : Tensor of shape (n, d), optional
        What the network reads instead of ``x``: ``model`` is applied to these features, or
        the proxy is trained on them.
    model : nn.Module, optional
        A trained classifier; its softmax outputs are scored.
    generator : torch.Generator, int or None
        Seeds the proxy (the scores themselves are deterministic).
    progress : bool
        A progress bar over the proxy's epochs (when a proxy is trained).
    probs : Tensor of shape (n, n_classes), optional
        Predicted probabilities to score directly.
    proxy_epochs : int
        Epochs of the proxy MLP trained when neither ``model`` nor ``probs`` is given.

    Returns
    -------
    Selection
        Indices from the most to the least uncertain kept example; ``scores`` (n,) are the
        uncertainty scores; ``info["probabilities"]`` says where the probabilities came from.

    References
    ----------
    Coleman et al., "Selection via Proxy: Efficient Data Selection for Deep Learning", ICLR 2020.
"""


@register("least_confidence")
def least_confidence(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
                     probs=None, proxy_epochs=30):
    """Keep the examples with the highest least-confidence score ``1 - max_c p_c``.
    {head}
    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]); y = torch.tensor([0, 0, 1, 1])
    >>> least_confidence(torch.zeros(4, 1), y, 2, probs=p).indices.tolist()
    [3, 1]
    """
    return _uncertainty("least_confidence", x, y, budget, per_class, features, model, generator, progress, probs,
                        proxy_epochs)


@register("entropy")
def entropy(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
            probs=None, proxy_epochs=30):
    """Keep the examples with the highest predictive entropy ``-sum_c p_c log p_c``.
    {head}
    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]); y = torch.tensor([0, 0, 1, 1])
    >>> entropy(torch.zeros(4, 1), y, 2, probs=p).indices.tolist()
    [3, 1]
    """
    return _uncertainty("entropy", x, y, budget, per_class, features, model, generator, progress, probs, proxy_epochs)


@register("margin")
def margin(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
           probs=None, proxy_epochs=30):
    """Keep the examples with the smallest margin ``p_(1) - p_(2)`` (highest ``1 - margin``).
    {head}
    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]); y = torch.tensor([0, 0, 1, 1])
    >>> margin(torch.zeros(4, 1), y, 2, probs=p).indices.tolist()
    [3, 1]
    """
    return _uncertainty("margin", x, y, budget, per_class, features, model, generator, progress, probs, proxy_epochs)


for _fn in (least_confidence, entropy, margin):
    _fn.__doc__ = _fn.__doc__.replace("    {head}\n", "\n" + _HEAD_DOC.lstrip("\n").rstrip() + "\n\n")
