"""One evaluation protocol per data set, so every number in the book is measured the same way.

A :class:`Protocol` fixes everything a measured accuracy depends on besides the small set
itself: the network, the training schedule, the data (a coreset pool, a validation split
carved from the training split, a fixed test set), the budgets and the seeds. Every chapter
takes its data from ``protocol.data()`` and its accuracies from ``protocol.evaluate``; a
chapter that must deviate says why in one sentence with ``protocol.variant(name, reason,
...)``, and the name and reason are recorded in every result. Hyperparameters are chosen
with ``evaluate(..., on="validation")``, never on the test set.

=========  ================================================================================
DIGITS     scikit-learn's 8x8 digits. ConvNet depth 2, width 32 (depth 3 would apply
           instance norm to 2x2 maps). Test: the 445 images of ``load_digits("test")``
           (every fourth image of each class); validation: 30 per class drawn from the
           1,352 training images with seed 0; pool: the other 1,052. Pixels in [0, 1].
MNIST      ConvNet-3 width 32 (sized for a CPU). Test: one fixed stratified subset of
           the test split, 200 per class (2,000 images, seed 0); validation: 100 per class
           of the training split; pool: 500 other images per class (5,000), seed 0.
           Normalised with the reference's mean 0.1307 and std 0.3081.
FASHION    As MNIST on Fashion-MNIST (mean 0.2861, std 0.3530).
PAPER      The papers' protocol on MNIST (Zhao et al., ICLR 2021): ConvNet-3 width 128,
           ``schedule="reference"`` (the reference ``evaluate_synset`` loop: 301 passes
           without augmentation, 1,001 with), the full test split, validation 100 per
           class, pool all other training images. It needs a GPU beyond tiny sets.
=========  ================================================================================

The CPU protocols train ``max(epochs, ceil(steps / batches_per_epoch))`` epochs, so a set of
10 images gets at least ``steps`` optimiser steps instead of one step per epoch; ``steps``
was chosen at the knee of the measured curve (DIGITS 200, MNIST and FASHION 300; see
``benchmarks/README_protocols.md``).

Example
-------
>>> from distillkit.protocols import DIGITS
>>> from distillkit.coresets import select
>>> x, y, x_val, y_val, x_test, y_test = DIGITS.data()
>>> sel = select("random", x, y, 10 * 10, generator=0)          # 10 images per class
>>> r = DIGITS.evaluate(x[sel.indices], y[sel.indices], seeds=(0,))
>>> r.protocol["name"], r.protocol["evaluated_on"]
('digits', 'test')
>>> quick = DIGITS.variant("digits-quick", "a doctest must run in seconds", epochs=5, steps=None)
>>> quick.evaluate(x[sel.indices], y[sel.indices], seeds=(0,), on="validation").protocol["reason"]
'a doctest must run in seconds'
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from ._validation import check_float, check_int, check_option, fail
from .evaluate import EvalResult, class_size_weights, evaluate_set
from .models import MLP, ConvNet
from .train import SCHEDULES

__all__ = ["DIGITS", "FASHION", "MNIST", "PAPER", "Protocol", "ProtocolData"]

_DATASETS = ("digits", "mnist", "fashion")
_ARCHS = ("convnet", "mlp")
_SHAPES = {"digits": (1, 8), "mnist": (1, 28), "fashion": (1, 28)}  # (channels, image size)
_STATS = {"mnist": (0.1307, 0.3081), "fashion": (0.2861, 0.3530)}  # the reference's normalisation


class ProtocolData(NamedTuple):
    """The protocol's three disjoint splits: coreset pool, validation, test.

    Parameters
    ----------
    x : Tensor
        Pool inputs (coresets are selected from them, distilled sets learned on them).
    y : Tensor
        Pool labels.
    x_val : Tensor
        Validation inputs, for choosing hyperparameters.
    y_val : Tensor
        Validation labels.
    x_test : Tensor
        Test inputs, for reporting only.
    y_test : Tensor
        Test labels.
    """

    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Protocol:
    """How a small training set is measured: data splits, network, schedule, budgets, seeds.

    Parameters
    ----------
    name : str
        Short name, recorded with every result.
    dataset : {"digits", "mnist", "fashion"}
        The data set whose splits the protocol fixes.
    width, depth, norm :
        The :class:`~distillkit.models.ConvNet`.
    arch : {"convnet", "mlp"}
        The evaluation network: the ConvNet above, or an :class:`~distillkit.models.MLP` with
        the hidden widths ``mlp_hidden`` (for cross-architecture variants).
    mlp_hidden : tuple of int
        Hidden widths of the MLP when ``arch="mlp"``.
    epochs, steps, schedule, lr, momentum, weight_decay, batch_size :
        The :func:`~distillkit.train.train_model` schedule (``steps``: minimum optimiser steps).
    augment_epochs : int, optional
        ``epochs`` when ``evaluate`` is given an ``augment`` (the papers train 1,000 instead
        of 300 epochs with augmentation); ``None`` keeps ``epochs``.
    pool_per_class : int, optional
        Images per class in the coreset pool; ``None``: every training image not in validation.
    val_per_class : int
        Images per class in the validation split (carved from the training split).
    test_per_class : int, optional
        Images per class of the fixed test subset; ``None``: the full test split.
    budgets : tuple of int
        Images per class the chapters report (1, 10, 50 where the CPU allows).
    seeds : tuple of int
        The default seeds of ``evaluate``.
    split_seed : int
        Seed of the stratified draws of validation, pool and test subset.
    reason, base :
        Set by :meth:`variant`: why it deviates, and from which protocol.
    """

    name: str
    dataset: str = "mnist"
    width: int = 128
    depth: int = 3
    norm: str = "instance"
    arch: str = "convnet"
    mlp_hidden: tuple[int, ...] = (128,)
    epochs: int = 300
    steps: int | None = None
    schedule: str = "book"
    augment_epochs: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    pool_per_class: int | None = None
    val_per_class: int = 100
    test_per_class: int | None = None
    budgets: tuple[int, ...] = (1, 10, 50)
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    reason: str = ""
    base: str | None = None

    def __post_init__(self):
        func = "Protocol"
        if not isinstance(self.name, str):
            fail(func, "name", "a non-empty str", self.name, error=TypeError)
        if not self.name.strip():
            fail(func, "name", "a non-empty str", self.name)
        check_option(self.dataset, "dataset", func, _DATASETS)
        check_option(self.schedule, "schedule", func, SCHEDULES)
        check_option(self.arch, "arch", func, _ARCHS)
        for param in ("width", "depth", "epochs", "batch_size", "val_per_class"):
            check_int(getattr(self, param), param, func, low=1)
        for param in ("steps", "augment_epochs", "pool_per_class", "test_per_class"):
            if getattr(self, param) is not None:
                check_int(getattr(self, param), param, func, low=1)
        check_int(self.split_seed, "split_seed", func, low=0)
        check_float(self.lr, "lr", func, low=0.0, low_open=True)
        for param, low in (("budgets", 1), ("seeds", 0), ("mlp_hidden", 1)):
            value = getattr(self, param)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                fail(func, param, "a non-empty sequence of ints", value, error=TypeError)
            value = tuple(check_int(v, param, func, low=low) for v in value)
            if not value:
                fail(func, param, "a non-empty sequence of ints", value)
            object.__setattr__(self, param, value)

    # --- the network ---------------------------------------------------------------------

    def model_fn(self, in_channels: int | None = None, n_classes: int = 10, im_size: int | None = None):
        """A factory ``model_fn(generator=seed)`` building this protocol's network (its ConvNet,
        or its MLP when ``arch="mlp"``; by default for its data set's image shape)."""
        channels, size = _SHAPES[self.dataset]
        if self.arch == "mlp":
            features = (in_channels or channels) * (im_size or size) ** 2
            return functools.partial(MLP, features, n_classes, hidden=self.mlp_hidden)
        return functools.partial(ConvNet, in_channels or channels, n_classes, im_size=im_size or size,
                                 width=self.width, depth=self.depth, norm=self.norm)

    # --- the data ------------------------------------------------------------------------

    def data(self, device=None) -> ProtocolData:
        """The pool, validation and test splits ``(x, y, x_val, y_val, x_test, y_test)``.

        Deterministic (stratified draws with ``split_seed``; indices kept in file order),
        disjoint, and the same for every protocol on the same data set with the same split
        fields. Loaded once per process and copied on each call. Images are float32
        ``(n, 1, h, w)``; MNIST and Fashion-MNIST are normalised.
        """
        from .data import resolve_root

        key = (self.dataset, self.pool_per_class, self.val_per_class, self.test_per_class, self.split_seed,
               str(resolve_root()))
        splits = _load_splits(*key)
        return ProtocolData(*(t.clone() if device is None else t.to(device, copy=True) for t in splits))

    # --- measuring -----------------------------------------------------------------------

    def evaluate(self, x, y, *, weights=None, seeds=None, augment=None, on: str = "test",
                 n_classes: int | None = None) -> EvalResult:
        """Train one fresh network per seed on ``(x, y)`` and measure it on the protocol's
        test set (``on="test"``) or validation split (``on="validation"``, for every choice
        of a hyperparameter).

        Parameters
        ----------
        x : Tensor of shape (n, 1, h, w)
        y : Tensor of shape (n,) int64, or (n, n_classes) float soft labels
        weights : Tensor of shape (n,), optional
            Per-example weights (weighted coresets).
        seeds : sequence of int, optional
            Default: the protocol's ``seeds``.
        augment : callable ``(x_batch, generator) -> x_batch``, optional
            Training augmentation; trains ``augment_epochs`` epochs when the protocol has them.
        on : {"test", "validation"}
        n_classes : int, optional
            Outputs of the network; default: the largest test label + 1.

        Returns
        -------
        EvalResult
            ``.protocol`` holds every field of this protocol (name, reason, base, ...), the
            schedule actually used, ``augmentation`` and ``evaluated_on``.
        """
        func = "Protocol.evaluate"
        on = check_option(on, "on", func, ("test", "validation"))
        splits = self.data()
        x_test, y_test = (splits.x_test, splits.y_test) if on == "test" else (splits.x_val, splits.y_val)
        seeds = self.seeds if seeds is None else seeds
        if isinstance(seeds, numbers.Integral) or not hasattr(seeds, "__iter__"):
            fail(func, "seeds", "a non-empty sequence of ints", seeds, error=TypeError)
        options = self._train_options(augment)
        if n_classes is None:
            n_classes = int(y_test.max()) + 1 if y_test.numel() else 10
        model_fn = self.model_fn(x.shape[1], n_classes, x.shape[-1])
        result = evaluate_set(model_fn, x, y, x_test, y_test, weights=weights, seeds=tuple(seeds), **options)
        record = {**asdict(self), **result.protocol, "evaluated_on": on}
        return EvalResult(result.accuracies, result.seeds, record)

    def train(self, x, y, *, generator: int, weights=None, augment=None, n_classes: int = 10, callback=None):
        """Train one fresh network of this protocol on ``(x, y)`` with its schedule and return it
        (in eval mode): for proxy models and for inspecting a trained network. ``generator`` seeds
        the initialisation and the minibatch order exactly as :meth:`evaluate` does for that seed.
        ``callback(epoch, model)``, when given, runs after every epoch (for example a
        :class:`~distillkit.coresets.ForgettingRecorder`, or a snapshot of an early network); it
        does not change the training."""
        from .train import train_model

        seed = check_int(generator, "generator", "Protocol.train", low=0)
        model = self.model_fn(x.shape[1], n_classes, x.shape[-1])(generator=seed).to(x.device)
        options = self._train_options(augment)
        if callback is not None:
            options["callback"] = callback
        return train_model(model, x, y, weights=weights, generator=seed + 10_000, **options).eval()

    def _train_options(self, augment) -> dict:
        """The :func:`~distillkit.train.train_model` schedule of this protocol (``augment_epochs``
        when an augmentation is given), shared by :meth:`evaluate` and :meth:`train`."""
        epochs = self.augment_epochs if augment is not None and self.augment_epochs is not None else self.epochs
        options = dict(epochs=epochs, steps=self.steps, schedule=self.schedule, lr=self.lr, momentum=self.momentum,
                       weight_decay=self.weight_decay, batch_size=self.batch_size)
        if augment is not None:
            options["augment"] = augment
        return options

    def random_baseline(self, ipc: int, seeds=None, *, weights: str | None = None, on: str = "test") -> EvalResult:
        """Random subsets of the pool with ``ipc`` images per class, one per seed: seed ``s``
        draws the subset (``select("random", ..., generator=s)``) and the network. Every chapter
        that shows the random baseline of a protocol and budget shows this number.

        ``weights="class_size"`` gives each picked image its class's pool size divided by the
        images picked from that class (the weights a per-class weighted coreset carries), for the
        weighted baseline beside a weighted method.
        """
        from .coresets import select

        func = "Protocol.random_baseline"
        ipc = check_int(ipc, "ipc", func, low=1)
        if weights is not None:
            check_option(weights, "weights", func, ("class_size",))
        seeds = self.seeds if seeds is None else seeds
        if isinstance(seeds, numbers.Integral) or not hasattr(seeds, "__iter__"):
            fail(func, "seeds", "a non-empty sequence of ints", seeds, error=TypeError)
        splits = self.data()
        n_classes = int(splits.y.max()) + 1
        accs = []
        for seed in seeds:
            idx = select("random", splits.x, splits.y, n_classes * ipc, generator=seed).indices
            w = None
            if weights == "class_size":
                w = class_size_weights(splits.y[idx], splits.y)
            accs += self.evaluate(splits.x[idx], splits.y[idx], weights=w, seeds=(seed,), on=on).accuracies
        return EvalResult(tuple(accs), tuple(seeds), {**asdict(self), "evaluated_on": on, "baseline": "random",
                                                      "weights": weights})

    def variant(self, name: str, reason: str, **changes) -> Protocol:
        """A copy of this protocol with ``changes``, named ``name``, that records ``reason``
        (one sentence: why the chapter deviates) and ``base`` (this protocol's name)."""
        func = "Protocol.variant"
        for param, value in (("name", name), ("reason", reason)):
            if not isinstance(value, str):
                fail(func, param, "a non-empty str", value, error=TypeError)
            if not value.strip():
                fail(func, param, "a non-empty str", value)
        if name == self.name:
            fail(func, "name", f"a name other than the base protocol's ({self.name!r})", name)
        allowed = [f.name for f in dataclasses.fields(self) if f.name not in ("name", "reason", "base")]
        for key in changes:
            if key not in allowed:
                fail(func, key, "a field of Protocol (one of " + ", ".join(allowed) + ")",
                     f"<an unknown field {key!r}>", error=TypeError)
        return dataclasses.replace(self, name=name, reason=reason, base=self.name, **changes)


def _stratified(y: torch.Tensor, counts: list[int | None], names: list[str],
                gen: torch.Generator) -> list[torch.Tensor]:
    """Disjoint index sets drawing ``counts[j]`` per class (``None``: all that remain), sorted."""
    parts: list[list[torch.Tensor]] = [[] for _ in counts]
    for c in range(int(y.max()) + 1):
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=gen)]
        start = 0
        for j, k in enumerate(counts):
            stop = members.numel() if k is None else start + k
            if stop > members.numel():
                fail("Protocol.data", names[j],
                     f"at most the {members.numel()} images of class {c} (with the other splits)", k)
            parts[j].append(members[start:stop])
            start = stop
    return [torch.cat(p).sort().values for p in parts]


@functools.lru_cache(maxsize=8)
def _load_splits(dataset, pool_per_class, val_per_class, test_per_class, split_seed, root):
    from .data import load_digits, load_fashion_mnist, load_mnist

    if dataset == "digits":
        (x, y), (xt, yt) = load_digits("train"), load_digits("test")
    else:
        loader = load_mnist if dataset == "mnist" else load_fashion_mnist
        (x, y), (xt, yt) = loader(root, split="train", progress=False), loader(root, split="test", progress=False)
        mean, std = _STATS[dataset]
        x, xt = (x - mean) / std, (xt - mean) / std
    gen = torch.Generator().manual_seed(split_seed)
    val, pool = _stratified(y, [val_per_class, pool_per_class], ["val_per_class", "pool_per_class"], gen)
    if test_per_class is not None:
        (test,) = _stratified(yt, [test_per_class], ["test_per_class"], torch.Generator().manual_seed(split_seed))
        xt, yt = xt[test], yt[test]
    return x[pool], y[pool], x[val], y[val], xt.contiguous(), yt.contiguous()


DIGITS = Protocol("digits", dataset="digits", width=32, depth=2, epochs=100, steps=200, val_per_class=30)
MNIST = Protocol("mnist", dataset="mnist", width=32, epochs=100, steps=300, pool_per_class=500, test_per_class=200)
FASHION = dataclasses.replace(MNIST, name="fashion", dataset="fashion")
PAPER = Protocol("paper", dataset="mnist", width=128, epochs=300, schedule="reference", augment_epochs=1000)
