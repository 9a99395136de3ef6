"""Error- and loss-based coresets: keep the examples that weigh most in the training loss.

* EL2N and GraNd (Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important
  Examples Early in Training", NeurIPS 2021): the norm of the error vector
  ``||softmax(f(x)) - onehot(y)||_2``, and the norm of the per-example loss gradient w.r.t. the
  parameters, ``||grad_theta CE(f(x), y)||_2``, computed early in training (GraNd also at
  initialisation) and averaged over a few networks. Paul et al. keep the examples with the
  highest scores and prune the easy ones; their sliding-window experiment also shows that
  when little data is kept, a window of ranks offset from the very hardest does better,
  which ``drop_top`` offers.
* Forgetting events (Toneva et al., ICLR 2019) live in :mod:`distillkit.coresets.forgetting`,
  and importance sampling with sensitivities (Feldman & Langberg, STOC 2011) in
  :mod:`distillkit.coresets.sensitivity`; both are re-exported here, so this module is the
  whole error/loss family.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_bool, check_float, check_generator, check_int, check_model, check_xy, fail
from ._base import (
    _check_model_input,
    _output_linear,
    check_common,
    class_budgets,
    make_selection,
    register,
    resolve_features,
    select_by_score,
)
from .forgetting import ForgettingRecorder, forgetting, forgetting_counts
from .proxy import _check_outputs, _check_probs, _predict_proba, _train_proxy
from .sensitivity import importance_sample, sensitivity, sensitivity_scores

__all__ = ["el2n_scores", "grand_scores", "el2n", "grand", "ForgettingRecorder", "forgetting_counts", "forgetting",
           "sensitivity_scores", "importance_sample", "sensitivity"]


def el2n_scores(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N: the norm of the error vector ``||p - onehot(y)||_2``, averaged over networks.

    Parameters
    ----------
    probs : Tensor of shape (n, n_classes), or (n_models, n, n_classes)
        Predicted probabilities (see :func:`~distillkit.coresets.predict_proba`).
    y : Tensor of shape (n,), int64
        Labels.

    Returns
    -------
    Tensor of shape (n,)
        In [0, sqrt(2)]; higher = larger error.

    References
    ----------
    Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early
    in Training", NeurIPS 2021.

    Examples
    --------
    >>> el2n_scores(torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([1]))  # sqrt(0.25 + 0.49 + 0.04)
    tensor([0.8832])
    """
    return _el2n_scores(probs, y, "el2n_scores")


def _el2n_scores(probs, y, func):
    probs = _check_probs(probs, func, ndim=(2, 3))
    p3 = probs if probs.dim() == 3 else probs.unsqueeze(0)  # (M, n, C)
    y = check_xy(p3[0], y, func)[1]
    if int(y.max()) >= p3.shape[2]:
        fail(func, "y", f"labels in [0, {p3.shape[2] - 1}] (one column of probs per class)", y)
    onehot = nn.functional.one_hot(y.to(p3.device), p3.shape[2]).to(p3.dtype)  # (n, C)
    return (p3 - onehot).norm(dim=2).mean(0)


def grand_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, last_layer: bool = False,
                 batch_size: int = 128) -> torch.Tensor:
    """GraNd: the norm of each example's cross-entropy gradient w.r.t. the model's parameters.

    Exact per-example gradients with ``torch.func`` (``vmap`` of ``grad``), in batches on
    ``x.device``, in eval mode (norm layers use their running statistics; the mode is restored).
    All parameters with ``requires_grad`` count, or only those of the ``nn.Linear`` layer that
    runs last in the forward pass (the classifier).

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits (n, n_classes).
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    last_layer : bool
        Only the weight and bias of the last ``nn.Linear`` to run (for a classifier ending in
        one, this equals the closed form ``||p - e_y|| * sqrt(||h||^2 + 1)``, h its input).
    batch_size : int
        Examples per backward pass.

    Returns
    -------
    Tensor of shape (n,)

    References
    ----------
    Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021.

    Examples
    --------
    >>> lin = nn.Linear(2, 2); _ = lin.weight.data.zero_(); _ = lin.bias.data.zero_()
    >>> grand_scores(lin, torch.tensor([[3.0, 4.0]]), torch.tensor([0]))  # ||(p - e_y)|| * sqrt(1 + ||x||^2)
    tensor([3.6056])
    """
    return _grand_scores(model, x, y, last_layer, batch_size, "grand_scores")


def _grand_scores(model, x, y, last_layer, batch_size, func):
    from torch.func import functional_call, grad, vmap

    x = _check_model_input(model, x, func)
    x, y = check_xy(x, y, func)
    last_layer = check_bool(last_layer, "last_layer", func)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    _check_outputs(model, x, y, func)  # a label the model cannot output, before any gradient
    named = dict(model.named_parameters())
    if last_layer:
        head = _output_linear(model, x[:1], func)
        keys = [name for name, p in named.items() if any(p is q for q in head.parameters())]
    else:
        keys = [name for name, p in named.items() if p.requires_grad]
    if not keys:
        fail(func, "model", "a network with trainable parameters", model)
    fixed = {name: p.detach() for name, p in named.items() if name not in keys}
    fixed.update(dict(model.named_buffers()))

    def loss(params, xi, yi):
        out = functional_call(model, {**fixed, **params}, (xi.unsqueeze(0),))  # (1, C)
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    params = {name: named[name].detach() for name in keys}
    was_training = model.training
    model.eval()
    try:
        out = []
        for s in range(0, x.shape[0], batch_size):
            g = per_example(params, x[s:s + batch_size], y[s:s + batch_size].to(x.device))  # name -> (b, *shape)
            out.append(torch.sqrt(sum(v.flatten(1).pow(2).sum(1) for v in g.values())))
    finally:
        model.train(was_training)
    return torch.cat(out)


def _keep_top(scores, budget, y, per_class, drop_top, func):
    """Highest scores, after skipping the top ``drop_top`` fraction (per class or globally)."""
    drop_top = check_float(drop_top, "drop_top", func, low=0.0, high=1.0, high_open=True)
    scores = scores.detach().cpu().double()
    if drop_top == 0:
        return select_by_score(scores, budget, y=y, order="top", per_class=per_class)
    y_cpu = y.cpu()
    groups = class_budgets(y_cpu, budget, func=func) if per_class else {None: budget}
    adjusted = scores.clone()
    floor = float(scores.min()) - 1.0
    for c, k_c in groups.items():
        members = torch.arange(scores.numel()) if c is None else (y_cpu == c).nonzero().squeeze(1)
        skip = int(drop_top * members.numel())
        if members.numel() - skip < k_c:
            where = "the data" if c is None else f"class {c}"
            fail(func, "drop_top", f"small enough to leave {k_c} examples of {where} after dropping the top "
                 f"fraction ({members.numel()} examples)", drop_top)
        ranked = members[torch.sort(scores[members], descending=True, stable=True).indices]
        adjusted[ranked[:skip]] = floor  # ranked after every kept candidate
    return select_by_score(adjusted, budget, y=y, order="top", per_class=per_class)


def _proxies(x, y, features, model, n_models, epochs, model_fn, generator, progress, func):
    """The networks to score with and the inputs they read (``features`` if given, else ``x``):
    ``model`` as given, or freshly trained proxies."""
    space = x if features is None else resolve_features(x, features, None, func)
    if model is not None:
        if not isinstance(model, nn.Module):
            fail(func, "model", "an nn.Module or None", model, error=TypeError)
        check_model(model, func, like=space)
        _check_outputs(model, space, y, func)  # a label the model cannot output
        check_generator(generator, func)
        return [model], space
    n_models = check_int(n_models, "n_models", func, low=1)
    epochs = check_int(epochs, "epochs", func, low=0)
    gen = check_generator(generator, func)
    return [_train_proxy(space, y, model_fn, epochs, None, gen, progress, {}, func) for _ in range(n_models)], space


@register("el2n")
def el2n(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
         probs=None, epochs=10, n_models=1, model_fn=None, drop_top=0.0):
    """Keep the examples with the largest EL2N score, computed early in training.

    Parameters
    ----------
    x, y, budget, per_class, features, model, generator, progress :
        The common head. ``model`` is scored as given; without it ``n_models`` proxies
        (``model_fn`` or a one-hidden-layer MLP) are trained for ``epochs`` epochs, seeded by
        ``generator``, and their scores averaged. The network reads ``features`` when given,
        else ``x``.
    probs : Tensor of shape (n, C) or (n_models, n, C), optional
        Probabilities to score directly.
    epochs, n_models, model_fn :
        The proxies (Paul et al. average 10 networks after a few epochs).
    drop_top : float in [0, 1)
        Skip this fraction of the highest scores (per class) before keeping the highest.

    Returns
    -------
    Selection
        Indices from the highest to the lowest kept score; ``scores`` (n,) are EL2N.

    References
    ----------
    Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021.

    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.5, 0.5]]); y = torch.tensor([0, 0, 1, 1])
    >>> el2n(torch.zeros(4, 1), y, 2, probs=p).indices.tolist()
    [1, 3]
    """
    func = "el2n"
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    if probs is not None:
        if model is not None or features is not None:
            fail(func, "probs", "None when model= or features= is given (give one source of probabilities)", probs)
        check_generator(generator, func)
        probs = _check_probs(probs, func, ndim=(2, 3), n_rows=x.shape[0])
    else:
        models, space = _proxies(x, y, features, model, n_models, epochs, model_fn, generator, progress, func)
        probs = torch.stack([_predict_proba(m, space, 512, func) for m in models])
    scores = _el2n_scores(probs, y, func)
    idx = _keep_top(scores, budget, y, per_class, drop_top, func)
    return make_selection(idx, method=func, scores=scores, info={"per_class": per_class, "drop_top": drop_top})


@register("grand")
def grand(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
          epochs=10, n_models=1, model_fn=None, last_layer=False, drop_top=0.0):
    """Keep the examples with the largest GraNd score (per-example gradient norm).

    Parameters
    ----------
    x, y, budget, per_class, features, model, generator, progress :
        The common head. ``model`` is scored as given; without it ``n_models`` proxies are
        trained for ``epochs`` epochs (``epochs=0``: at initialisation) and their scores
        averaged. The network reads ``features`` when given, else ``x``.
    epochs, n_models, model_fn :
        The proxies (Paul et al. average 10 networks, at initialisation or early in training).
    last_layer : bool
        Gradient w.r.t. the last linear layer only (see :func:`grand_scores`).
    drop_top : float in [0, 1)
        Skip this fraction of the highest scores (per class) before keeping the highest.

    Returns
    -------
    Selection
        Indices from the highest to the lowest kept score; ``scores`` (n,) are GraNd.

    References
    ----------
    Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021.

    Examples
    --------
    >>> x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
    >>> len(grand(x, y, 4, epochs=2, generator=0))
    4
    """
    func = "grand"
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    check_bool(last_layer, "last_layer", func)
    models, space = _proxies(x, y, features, model, n_models, epochs, model_fn, generator, progress, func)
    scores = torch.stack([_grand_scores(m, space, y, last_layer, 128, func) for m in models]).mean(0)
    idx = _keep_top(scores, budget, y, per_class, drop_top, func)
    info = {"per_class": per_class, "drop_top": drop_top, "last_layer": last_layer}
    return make_selection(idx, method=func, scores=scores, info=info)
