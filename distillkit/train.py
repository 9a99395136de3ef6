"""Train a fresh network on a (possibly weighted) training set with the book's protocol.

The optimiser is the one every dataset-distillation paper evaluates with (Zhao et al.,
ICLR 2021, ``evaluate_synset``): SGD with learning rate 0.01, momentum 0.9, weight decay
5e-4, minibatches of ``min(batch_size, n)`` examples (256 by default, the last one of an
epoch smaller), and the learning rate multiplied by 0.1 once. Training runs on the device
of ``x``.

Two schedules decide how long training lasts and when the learning rate drops:

- ``schedule="book"`` (default): ``epochs`` passes over the data; the learning rate is
  multiplied by 0.1 at the start of epoch ``epochs // 2``, in the same optimiser (its
  momentum is kept).
- ``schedule="reference"``: exactly the loop of the reference ``evaluate_synset``
  (VICO-UoE/DatasetCondensation, ``utils.py``): ``epochs + 1`` passes (epochs
  ``0 .. epochs``); after pass ``epochs // 2 + 1`` the learning rate is multiplied by 0.1
  and the optimiser is created anew, so its momentum restarts from zero.

``steps`` sets a minimum number of optimiser steps. A set of ``n`` examples takes
``b = ceil(n / batch_size)`` steps per epoch, so ``epochs`` becomes
``max(epochs, ceil(steps / b))`` before the schedule is applied: a 10-image set with
``epochs=100, steps=300`` trains 300 epochs of one step each, a 60,000-image set is not
affected. Without ``steps`` nothing changes.

Example
-------
>>> import torch
>>> from distillkit.models import MLP
>>> x, y = torch.randn(10, 2, generator=torch.Generator().manual_seed(0)), torch.arange(10) % 2
>>> net = train_model(MLP(2, 2, hidden=(8,), generator=0), x, y, epochs=5, steps=20, generator=0)
>>> net.training
False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ._validation import check_float, check_generator, check_int, check_option, check_tensor, check_xy, fail

__all__ = ["SCHEDULES", "train_model", "total_epochs"]

SCHEDULES = ("book", "reference")


def total_epochs(n: int, *, epochs: int, steps: int | None = None, batch_size: int = 256) -> int:
    """The number of epochs :func:`train_model` runs under ``schedule="book"``:
    ``max(epochs, ceil(steps / ceil(n / batch_size)))`` (``epochs`` without ``steps``).
    The reference schedule runs one more.

    >>> total_epochs(10, epochs=100, steps=300), total_epochs(1000, epochs=100, steps=300)
    (300, 100)

    Parameters
    ----------
    n : int
        Size of the training set.
    epochs : int
        The schedule's epochs.
    steps : int, optional
        Minimum number of optimiser steps.
    batch_size : int
        Minibatch size.
    """
    func = "total_epochs"
    n = check_int(n, "n", func, low=1)
    epochs = check_int(epochs, "epochs", func, low=1)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    if steps is None:
        return epochs
    steps = check_int(steps, "steps", func, low=1)
    return _total_epochs(n, epochs, steps, batch_size)


def _total_epochs(n: int, epochs: int, steps: int | None, batch_size: int) -> int:
    if steps is None:
        return epochs
    per_epoch = math.ceil(n / min(batch_size, n))
    return max(epochs, math.ceil(steps / per_epoch))


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    epochs: int = 300,
    steps: int | None = None,
    schedule: str = "book",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
    generator=None,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` and return it.

    Parameters
    ----------
    model : nn.Module
        A freshly initialised network, already on the device of ``x``.
    x : Tensor of shape (n, ...)
        Training inputs.
    y : Tensor of shape (n,) int64, or (n, n_classes) float soft labels
        Their labels.
    weights : Tensor of shape (n,), optional
        Non-negative per-example weights. Each minibatch minimises
        ``sum_i w_i l_i / sum_i w_i``, so weights are scale-free.
    epochs : int
        Passes over the data (``schedule="book"``), or the reference's ``Epoch``
        (``schedule="reference"`` runs ``epochs + 1`` passes).
    steps : int, optional
        Minimum number of optimiser steps: ``epochs`` becomes
        ``max(epochs, ceil(steps / ceil(n / batch_size)))`` (see the module docstring).
    schedule : {"book", "reference"}
        When the learning rate drops and whether the optimiser restarts (module docstring).
    lr, momentum, weight_decay, batch_size :
        The optimiser; minibatches hold ``min(batch_size, n)`` examples.
    augment : callable ``(x_batch, generator) -> x_batch``, optional
        Applied to every minibatch.
    callback : callable ``(epoch, model)``, optional
        Called after every epoch (for example to record forgetting events).
    generator : torch.Generator, int or None
        Drives the minibatch order and the augmentation.
    progress : bool
        Show a progress bar over epochs.

    Returns
    -------
    nn.Module
        The same ``model``, trained, in eval mode.

    References
    ----------
    Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021
    (``evaluate_synset`` in their code is ``schedule="reference"``).
    """
    func = "train_model"
    if not isinstance(model, nn.Module):
        fail(func, "model", "an nn.Module", model, error=TypeError)
    soft = isinstance(y, torch.Tensor) and y.is_floating_point()
    if soft:
        x = check_tensor(x, "x", func, floating=True, min_rows=1)
        y = check_tensor(y, "y", func, ndim=2, floating=True)
        if y.shape[0] != x.shape[0]:
            fail(func, "y", f"a tensor with one row per row of x ({x.shape[0]})", y)
        # soft labels are distributions over classes: the loss -sum(y log p) is a cross-entropy only then
        row_sums = y.sum(1)
        if bool((y < 0).any()) or not bool(torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4)):
            worst = int((row_sums - 1).abs().argmax())
            fail(func, "y", "soft labels whose rows are distributions (non-negative, summing to 1)",
                 f"<row {worst} summing to {float(row_sums[worst]):.4g}, min entry {float(y.min()):.4g}>")
    else:
        x, y = check_xy(x, y, func)
    n = x.shape[0]
    if weights is not None:
        weights = check_tensor(weights, "weights", func, ndim=1, floating=True)
        if weights.shape[0] != n:
            fail(func, "weights", f"a tensor with one weight per example ({n})", weights)
        if bool((weights < 0).any()) or float(weights.sum()) <= 0:
            fail(func, "weights", "non-negative with a positive sum", weights)
        weights = weights.to(x.device, x.dtype)
    epochs = check_int(epochs, "epochs", func, low=1)
    if steps is not None:
        steps = check_int(steps, "steps", func, low=1)
    schedule = check_option(schedule, "schedule", func, SCHEDULES)
    lr = check_float(lr, "lr", func, low=0.0, low_open=True)
    momentum = check_float(momentum, "momentum", func, low=0.0, high=1.0, high_open=True)
    weight_decay = check_float(weight_decay, "weight_decay", func, low=0.0)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    gen = check_generator(generator, func)
    epochs = _total_epochs(n, epochs, steps, batch_size)

    from tqdm.auto import trange

    def new_optimizer(rate):
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=momentum, weight_decay=weight_decay)

    model.train()
    opt = new_optimizer(lr)
    passes = epochs + 1 if schedule == "reference" else epochs
    for epoch in trange(passes, disable=not progress, desc="train", leave=False):
        if schedule == "book" and epoch == epochs // 2 and epochs > 1:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        order = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            logits = model(xb)
            if soft:
                losses = -(yb * torch.log_softmax(logits, dim=1)).sum(1)
            else:
                losses = nn.functional.cross_entropy(logits, yb, reduction="none")
            if weights is None:
                loss = losses.mean()
            else:
                wb = weights[idx]
                loss = (wb * losses).sum() / wb.sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if schedule == "reference" and epoch == epochs // 2 + 1:
            opt = new_optimizer(lr * 0.1)  # the reference re-creates SGD: momentum restarts
        if callback is not None:
            callback(epoch, model)
    model.eval()
    return model
