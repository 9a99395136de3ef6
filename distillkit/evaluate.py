"""Measure a small training set: train fresh networks on it, test them on a fixed test set.

This is the evaluation protocol of every chapter: for each seed, a new network is built
from ``model_fn(generator=seed)``, trained with :func:`distillkit.train.train_model` on the
small set, and its accuracy on the test set recorded. Results are reported as mean ± sample
standard deviation over seeds (a single seed is shown as its value and "(1 seed)"). Most
chapters call :meth:`distillkit.protocols.Protocol.evaluate`, which fixes the network, the
schedule and the test set; :func:`evaluate_set` is the general tool beneath it.

Two reference points go beside every accuracy: :func:`majority_rate` (always predicting the
majority class, the floor on an imbalanced data set) and, for a weighted coreset, random
examples carrying :func:`class_size_weights` (the kind of weights CRAIG gives).

Example
-------
>>> import torch
>>> from distillkit.models import MLP
>>> x, y = torch.randn(20, 2, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 2
>>> r = evaluate_set(lambda generator: MLP(2, 2, hidden=(8,), generator=generator), x, y, x, y,
...                  seeds=(0, 1), epochs=2)
>>> len(r.accuracies), r.protocol["augmentation"]
(2, False)
>>> str(EvalResult((0.5, 0.7, 0.9), (0, 1, 2))), str(EvalResult((0.721,), (0,)))
('70.0 ± 20.0', '72.1 (1 seed)')
>>> majority_rate(torch.tensor([0, 0, 0, 1]))
0.75
>>> class_size_weights(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])).tolist()
[4.0, 3.0, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validation import check_int, check_tensor, check_xy, fail
from .train import train_model

__all__ = ["accuracy", "class_size_weights", "EvalResult", "evaluate_set", "majority_rate"]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (evaluated in batches, eval mode).

    Parameters
    ----------
    model : nn.Module
        A trained classifier.
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Their labels.
    batch_size : int
        Examples per forward pass.
    """
    x, y = check_xy(x, y, "accuracy")
    batch_size = check_int(batch_size, "batch_size", "accuracy", low=1)
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start:start + batch_size])
        correct += int((logits.argmax(1) == y[start:start + batch_size].to(logits.device)).sum())
    model.train(was_training)
    return correct / x.shape[0]


def _labels(y, param: str, func: str) -> torch.Tensor:
    y = check_tensor(y, param, func, ndim=1, floating=False, min_rows=1)
    if y.dtype != torch.int64:
        fail(func, param, "an int64 tensor of class labels", y, error=TypeError)
    if int(y.min()) < 0:
        fail(func, param, "non-negative class labels", f"<a minimum label of {int(y.min())}>")
    return y


def majority_rate(y: torch.Tensor, *, y_train: torch.Tensor | None = None) -> float:
    """Accuracy on labels ``y`` of always predicting one class: the most frequent class of
    ``y_train`` if given (a constant predictor fitted on training data), else of ``y``.

    Parameters
    ----------
    y : Tensor of shape (n,), int64
        The labels the constant prediction is scored on (usually the test labels).
    y_train : Tensor of shape (m,), int64, optional
        Labels the majority class is taken from; ties go to the smallest label.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> majority_rate(torch.tensor([1, 1, 0, 2])), majority_rate(torch.tensor([1, 0]), y_train=torch.tensor([0, 0]))
    (0.5, 0.5)
    """
    y = _labels(y, "y", "majority_rate").cpu()
    source = y if y_train is None else _labels(y_train, "y_train", "majority_rate").cpu()
    majority = int(torch.bincount(source).argmax())
    return float((y == majority).sum()) / y.numel()


def class_size_weights(y_subset: torch.Tensor, y_pool: torch.Tensor) -> torch.Tensor:
    """CRAIG-like weights for a subset: each kept example of class c weighs
    ``(number of class-c examples in the pool) / (number of class-c examples kept)``.

    The weights of a class then sum to its size in the pool, as CRAIG's cluster-size weights
    do (:func:`distillkit.coresets.craig`), so "random with class-size weights" is the
    baseline a weighted coreset method is compared with at the same budget.

    Parameters
    ----------
    y_subset : Tensor of shape (k,), int64
        Labels of the kept examples.
    y_pool : Tensor of shape (n,), int64
        Labels of the pool they were kept from.

    Returns
    -------
    Tensor of shape (k,), float32, on the device of ``y_subset``

    Examples
    --------
    >>> class_size_weights(torch.tensor([2, 2]), torch.tensor([2, 2, 2, 0])).tolist()
    [1.5, 1.5]
    """
    func = "class_size_weights"
    y_subset = _labels(y_subset, "y_subset", func)
    y_pool = _labels(y_pool, "y_pool", func)
    n_classes = max(int(y_subset.max()), int(y_pool.max())) + 1
    pool_counts = torch.bincount(y_pool.cpu(), minlength=n_classes)
    kept_counts = torch.bincount(y_subset.cpu(), minlength=n_classes)
    missing = ((kept_counts > 0) & (pool_counts == 0)).nonzero().squeeze(1)
    if missing.numel():
        fail(func, "y_subset", "labels of classes present in y_pool",
             f"<class {int(missing[0])}, which y_pool does not contain>")
    ratio = pool_counts.float() / kept_counts.clamp_min(1).float()
    return ratio[y_subset.cpu()].to(y_subset.device)


@dataclass(frozen=True)
class EvalResult:
    """Test accuracies of networks trained on one small set, one per seed.

    ``protocol`` records how they were measured (the protocol's name and reason, network,
    schedule, whether augmentation was used, ...). ``str`` gives ``"mean ± std"`` in points,
    or ``"value (1 seed)"`` for a single seed.

    Parameters
    ----------
    accuracies : tuple of float
        Test accuracy of each network, one per seed.
    seeds : tuple of int
        The seeds, in the same order.
    protocol : dict
        How the accuracies were measured.
    """

    accuracies: tuple[float, ...]
    seeds: tuple[int, ...]
    protocol: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def std(self) -> float:
        """Sample standard deviation (divisor k - 1; 0 for a single seed, which has no spread
        to estimate: ``str`` then shows "(1 seed)" instead)."""
        k = len(self.accuracies)
        if k < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / (k - 1))

    def __str__(self) -> str:
        if len(self.accuracies) == 1:
            return f"{100 * self.accuracies[0]:.1f} (1 seed)"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


def evaluate_set(
    model_fn: Callable[..., nn.Module],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 300,
    progress: bool = False,
    **train_options,
) -> EvalResult:
    """Train one fresh network per seed on ``(x_train, y_train)`` and test each.

    Parameters
    ----------
    model_fn : callable
        ``model_fn(generator=seed)`` returns a fresh network on the device of ``x_train``.
    x_train, y_train : Tensors of shapes (n, ...) and (n,) or (n, n_classes)
        The small training set (hard int64 labels or float soft labels).
    x_test, y_test : Tensors of shapes (m, ...) and (m,)
        The test (or validation) set.
    weights : Tensor of shape (n,), optional
        Per-example weights (weighted coresets).
    seeds : sequence of int
        One network per seed; the seed drives initialisation and minibatch order.
    epochs : int
        Training epochs of every network.
    progress : bool
        Show a progress bar over the seeds.
    **train_options :
        Passed to :func:`~distillkit.train.train_model` (steps, schedule, lr, batch_size,
        augment, ...).

    Returns
    -------
    EvalResult
        ``.mean``, ``.std`` and the per-seed ``.accuracies``; ``.protocol`` holds ``epochs``,
        the train options and ``augmentation`` (whether ``augment`` was given).
    """
    seeds = tuple(check_int(s, "seeds", "evaluate_set", low=0) for s in seeds)
    if not seeds:
        fail("evaluate_set", "seeds", "a non-empty sequence of ints", seeds)
    x_test, y_test = check_xy(x_test, y_test, "evaluate_set")
    x_test = x_test.to(x_train.device)
    accs = []
    for seed in seeds:
        model = model_fn(generator=seed).to(x_train.device)
        train_model(model, x_train, y_train, weights=weights, epochs=epochs, generator=seed + 10_000,
                    progress=progress, **train_options)
        accs.append(accuracy(model, x_test, y_test))
    protocol = {"epochs": epochs, **{k: v for k, v in train_options.items() if k not in ("augment", "callback")},
                "augmentation": train_options.get("augment") is not None}
    return EvalResult(tuple(accs), seeds, protocol)
