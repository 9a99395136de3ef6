"""Proxy models: the small classifier that score-based coreset methods consult by default.

Coleman et al., "Selection via Proxy: Efficient Data Selection for Deep Learning" (ICLR 2020)
show that a small, briefly trained model ranks examples nearly as well as the large model it
stands in for. The uncertainty, loss, forgetting and decision-boundary methods all train
such a proxy (:func:`train_proxy`, an MLP with one hidden layer of 128 units unless told
otherwise) when no ``model`` is given, and read its softmax outputs (:func:`predict_proba`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._validation import (
    check_bool,
    check_generator,
    check_int,
    check_labels,
    check_model,
    check_tensor,
    check_xy,
    fail,
)
from ..models import MLP
from ..train import train_model

__all__ = ["predict_proba", "train_proxy"]

MAX_PROXY_CLASSES = 1 << 16  # the default proxy has one output per label up to the largest: refuse absurd labels


def _check_probs(probs, func: str, param: str = "probs", *, ndim=2, n_rows: int | None = None) -> torch.Tensor:
    """Validate predicted probabilities (..., n, n_classes); ``n_rows``: the n the caller's x has."""
    probs = check_tensor(probs, param, func, ndim=ndim, floating=True, half=False)
    if probs.shape[-1] < 2 or probs.shape[-2] < 1:
        fail(func, param, "a tensor of shape (n, n_classes) with n >= 1 and n_classes >= 2", probs)
    if n_rows is not None and probs.shape[-2] != n_rows:
        fail(func, param, f"a tensor with one row per example ({n_rows})", probs)
    if bool((probs < 0).any()):
        fail(func, param, "non-negative probabilities", f"<a minimum of {float(probs.min()):.3g}>")
    tol = max(1e-4, 4 * probs.shape[-1] * torch.finfo(probs.dtype).eps)
    worst = float((probs.sum(-1) - 1).abs().max())
    if worst > tol:
        fail(func, param, f"rows that sum to 1 (within {tol:g})", f"<a row whose sum is off by {worst:.3g}>")
    return probs


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Softmax of ``model(x)``, shape (n, n_classes), in batches on ``x.device``, in eval mode.

    The model's train/eval mode is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        A trained classifier (evaluated in eval mode).
    x : Tensor of shape (n, ...)
        Inputs.
    batch_size : int
        Examples per forward pass.

    Examples
    --------
    >>> lin = nn.Linear(2, 3); _ = lin.weight.data.zero_(); _ = lin.bias.data.zero_()
    >>> predict_proba(lin, torch.zeros(1, 2))
    tensor([[0.3333, 0.3333, 0.3333]])
    """
    return _predict_proba(model, x, batch_size, "predict_proba")


def _predict_proba(model, x, batch_size, func: str) -> torch.Tensor:
    check_model(model, func)
    x = check_tensor(x, "x", func, floating=True, min_rows=1, min_ndim=2, half=False)
    check_model(model, func, like=x)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    with torch.no_grad():
        return _predict_core(model, x, batch_size)


def _predict_core(model, x, batch_size):
    was_training = model.training
    model.eval()
    try:
        out = [torch.softmax(model(x[s:s + batch_size]), dim=1) for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def train_proxy(x: torch.Tensor, y: torch.Tensor, *, model_fn: Callable[..., nn.Module] | None = None,
                epochs: int = 30, callback=None, generator=None, progress: bool = False,
                **train_options) -> nn.Module:
    """Train a small proxy classifier on ``(x, y)``: the model score-based methods use by default.

    The network is ``model_fn(generator=seed)`` when given, else an MLP with one hidden layer
    of 128 units; it is moved to the device and dtype of ``x`` and trained with
    :func:`~distillkit.train.train_model` for ``epochs`` epochs (``epochs=0`` returns it
    untrained, at initialisation). Both seeds come from ``generator``.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    model_fn : callable, optional
        ``model_fn(generator=seed)`` returns a fresh network.
    epochs : int
        Training epochs (0 or more).
    callback : callable ``(epoch, model)``, optional
        Passed to ``train_model`` (for example a :class:`~distillkit.coresets.ForgettingRecorder`).
    generator : torch.Generator, int or None
        Seed of the network's initialisation and of the batch order.
    progress : bool
        Show a progress bar over the epochs.
    **train_options :
        Passed to ``train_model`` (lr, batch_size, weight_decay, ...).

    Returns
    -------
    nn.Module
        The trained proxy, in eval mode.

    References
    ----------
    Coleman et al., "Selection via Proxy: Efficient Data Selection for Deep Learning", ICLR 2020.

    Examples
    --------
    >>> x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
    >>> train_proxy(x, y, epochs=2, generator=0)(x).shape
    torch.Size([20, 2])
    """
    return _train_proxy(x, y, model_fn, epochs, callback, generator, progress, train_options, "train_proxy")


def _train_proxy(x, y, model_fn, epochs, callback, generator, progress, train_options, func: str,
                 epochs_param: str = "epochs") -> nn.Module:
    """:func:`train_proxy`, with errors naming ``func`` (the public function the caller used)."""
    x, y = check_xy(x, y, func, min_ndim=2, half=False)
    epochs = check_int(epochs, epochs_param, func, low=0)
    check_bool(progress, "progress", func)
    if model_fn is not None and not callable(model_fn):
        fail(func, "model_fn", "a callable model_fn(generator=seed) or None", model_fn, error=TypeError)
    if model_fn is None:  # checked before the MLP is allocated: a label of 1e9 would ask for 1e9 outputs
        check_labels(y, MAX_PROXY_CLASSES, func, f"the proxy MLP has one output per label up to the largest, "
                     f"at most {MAX_PROXY_CLASSES}")
    gen = check_generator(generator, func)
    init_seed, train_seed = torch.randint(0, 2**62, (2,), generator=gen).tolist()
    if model_fn is None:
        model = MLP(x[0].numel(), int(y.max()) + 1, hidden=(128,), generator=init_seed)
    else:
        model = model_fn(generator=init_seed)
        if not isinstance(model, nn.Module):
            fail(func, "model_fn", "a callable returning an nn.Module", model, error=TypeError)
    model = model.to(device=x.device, dtype=x.dtype)
    if model_fn is not None:
        _check_outputs(model, x, y, func, "model_fn")
    if epochs == 0:
        return model.eval()
    return train_model(model, x, y.to(x.device), epochs=epochs, callback=callback, generator=train_seed,
                       progress=progress, **train_options)


@torch.no_grad()
def _check_outputs(model, x, y, func: str, param: str = "model") -> int:
    """``model(x[:1])`` must be logits (1, C) with C > max(y); returns C. Eval mode, no state changes."""
    was_training = model.training
    model.eval()
    try:
        out = model(x[:1])
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        what = f"of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"of type {type(out).__name__}"
        fail(func, param, "a classifier returning logits of shape (n, n_classes)", f"<an output {what}>")
    check_labels(y, out.shape[1], func, f"the model has {out.shape[1]} outputs")
    return out.shape[1]


def _fit_proxy(space, y, proxy_epochs, generator, func: str, progress: bool) -> nn.Module:
    """The default proxy of the selection method ``func``, trained on ``space`` for ``proxy_epochs``."""
    proxy_epochs = check_int(proxy_epochs, "proxy_epochs", func, low=1)
    return _train_proxy(space, y, None, proxy_epochs, None, check_generator(generator, func), progress, {}, func,
                        "proxy_epochs")
