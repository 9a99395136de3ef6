"""Forgetting events: keep the examples a network keeps forgetting while it trains.

Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network Learning"
(ICLR 2019) record, for every training example, whether it is classified correctly each time
it is presented. A *forgetting event* is a transition from correct to incorrect between two
consecutive presentations. Examples never forgotten ("unforgettable") can be removed with
little loss; the most forgotten are kept.

Convention for examples **never** classified correctly (as in the authors' reference code,
``sort_examples_by_forgetting``): their count is the number of presentations ``T`` of that
run, which is more than any learned example can reach (at most ``T // 2`` events), so they
rank first. Counts are summed over runs.

The reference code records correctness at each minibatch presentation (train-mode forward
pass, augmented input). :class:`ForgettingRecorder` supports that through
:meth:`ForgettingRecorder.update`; used as a ``train_model`` callback (what the registered
method ``"forgetting"`` does) it classifies the whole set once per epoch in eval mode after
the epoch's updates instead: an epoch-level approximation, cheap for small data sets.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from .._validation import check_generator, check_int, check_model, check_tensor, check_xy, fail
from ..train import train_model
from ._base import check_common, make_selection, register, resolve_features, select_by_score
from .proxy import _check_outputs, _train_proxy

__all__ = ["ForgettingRecorder", "forgetting_counts", "forgetting"]


def _check_history(history, func: str) -> torch.Tensor:
    history = check_tensor(history, "history", func, ndim=(2, 3))
    if history.dtype != torch.bool:
        if history.is_floating_point() or bool(((history != 0) & (history != 1)).any()):
            fail(func, "history", "a bool tensor (or 0/1 integers) of shape (T, n) or (runs, T, n)", history,
                 error=TypeError if history.is_floating_point() else ValueError)
        history = history.bool()
    if history.shape[-2] < 1 or history.shape[-1] < 1:
        fail(func, "history", "a tensor with at least one presentation and one example", history)
    return history


def forgetting_counts(history: torch.Tensor) -> torch.Tensor:
    """Number of forgetting events (correct -> incorrect transitions) of every example.

    Parameters
    ----------
    history : bool Tensor of shape (T, n), or (runs, T, n)
        ``history[t, i]`` says whether example ``i`` was classified correctly at its ``t``-th
        presentation (0/1 integers are accepted).

    Returns
    -------
    Tensor of shape (n,), int64
        Per run, the number of ``t`` with ``history[t-1, i] and not history[t, i]``, or ``T``
        when the example was never classified correctly (the maximum, as in Toneva et al.'s
        reference code); summed over runs.

    References
    ----------
    Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
    Learning", ICLR 2019.

    Examples
    --------
    >>> h = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]])  # T=4 presentations, n=3
    >>> forgetting_counts(h).tolist()
    [2, 4, 0]
    """
    history = _check_history(history, "forgetting_counts")
    runs = history if history.dim() == 3 else history.unsqueeze(0)  # (R, T, n)
    events = (runs[:, :-1] & ~runs[:, 1:]).sum(1)  # (R, n): correct at t-1, wrong at t
    never = ~runs.any(1)  # (R, n)
    counts = torch.where(never, runs.shape[1], events)
    return counts.sum(0).to(torch.int64)


class ForgettingRecorder:
    """Records which examples are classified correctly over training.

    Use it as the ``callback`` of :func:`~distillkit.train.train_model`: after every epoch it
    classifies all of ``x`` (eval mode, in batches on the model's device; the model's mode is
    restored) and appends one row. Or call :meth:`update` with each minibatch's outputs, as
    Toneva et al. do; a row is appended once every example has been presented once.

    Parameters
    ----------
    x : Tensor of shape (n, ...) or None
        The examples to classify after each epoch (None when only :meth:`update` is used).
    y : Tensor of shape (n,), int64
        Their labels.
    batch_size : int
        Batch size of the per-epoch evaluation.

    References
    ----------
    Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
    Learning", ICLR 2019.

    Examples
    --------
    >>> rec = ForgettingRecorder(None, torch.tensor([0, 1, 1]))
    >>> rec.update(torch.tensor([0, 2]), torch.tensor([0, 0]))  # predicted labels of examples 0 and 2
    >>> rec.update(torch.tensor([1]), torch.tensor([1]))
    >>> rec.history.tolist(), rec.counts().tolist()
    ([[True, True, False]], [0, 0, 1])
    """

    def __init__(self, x: torch.Tensor | None, y: torch.Tensor, *, batch_size: int = 512):
        func = "ForgettingRecorder"
        if x is None:
            y = check_tensor(y, "y", func, ndim=1, floating=False, min_rows=1)
            if y.dtype != torch.int64:
                fail(func, "y", "an int64 tensor of class labels", y, error=TypeError)
        else:
            x, y = check_xy(x, y, func)
        self.x, self.y = x, y
        self.batch_size = check_int(batch_size, "batch_size", func, low=1)
        self._rows: list[torch.Tensor] = []
        self._pending = torch.full((y.shape[0],), -1, dtype=torch.int8)  # -1: not yet presented this round

    @torch.no_grad()
    def __call__(self, epoch: int, model: nn.Module) -> None:
        """Classify all of ``x`` with ``model`` and append the row of correct/incorrect."""
        if self.x is None:
            fail("ForgettingRecorder", "x", "a tensor when the recorder is used as a callback", None, error=TypeError)
        was_training = model.training
        model.eval()
        try:
            preds = [model(self.x[s:s + self.batch_size]).argmax(1) for s in range(0, self.x.shape[0], self.batch_size)]
        finally:
            model.train(was_training)
        self.record(torch.cat(preds).cpu() == self.y.cpu())

    def record(self, correct: torch.Tensor) -> None:
        """Append one presentation of every example: ``correct`` is a bool tensor of shape (n,)."""
        correct = check_tensor(correct, "correct", "ForgettingRecorder.record", ndim=1)
        if correct.dtype != torch.bool or correct.shape[0] != self.y.shape[0]:
            fail("ForgettingRecorder.record", "correct", f"a bool tensor of shape ({self.y.shape[0]},)", correct)
        self._rows.append(correct.detach().cpu().clone())

    @torch.no_grad()
    def update(self, indices: torch.Tensor, outputs: torch.Tensor) -> None:
        """Record one minibatch presentation.

        ``indices`` (b,) are the examples' rows in ``y``; ``outputs`` are their logits (b, C)
        or predicted labels (b,). Each example must be presented once per round: a row is
        appended when the round is complete.
        """
        func = "ForgettingRecorder.update"
        indices = check_tensor(indices, "indices", func, ndim=1, floating=False).detach().cpu().long()
        outputs = check_tensor(outputs, "outputs", func, ndim=(1, 2))
        if outputs.shape[0] != indices.shape[0]:
            fail(func, "outputs", f"one row per index ({indices.shape[0]})", outputs)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.y.shape[0]):
            fail(func, "indices", f"row numbers in [0, {self.y.shape[0] - 1}]", indices)
        if bool((self._pending[indices] >= 0).any()) or indices.unique().numel() != indices.numel():
            fail(func, "indices", "examples not yet presented in this round (each once per round)", indices)
        preds = outputs.argmax(1) if outputs.dim() == 2 else outputs
        self._pending[indices] = (preds.detach().cpu() == self.y.cpu()[indices]).to(torch.int8)
        if bool((self._pending >= 0).all()):
            self._rows.append(self._pending.bool())
            self._pending = torch.full_like(self._pending, -1)

    @property
    def history(self) -> torch.Tensor:
        """Bool tensor of shape (T, n): correctness of every example at each recorded presentation."""
        if not self._rows:
            return torch.zeros(0, self.y.shape[0], dtype=torch.bool)
        return torch.stack(self._rows)

    def counts(self) -> torch.Tensor:
        """:func:`forgetting_counts` of the history recorded so far, shape (n,)."""
        return forgetting_counts(self.history)


@register("forgetting")
def forgetting(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
               epochs=30, n_runs=1, model_fn: Callable[..., nn.Module] | None = None, history=None):
    """Keep the most forgotten examples (never-learned ones first, ties by index).

    Trains a network ``n_runs`` times for ``epochs`` epochs with a :class:`ForgettingRecorder`
    as callback (correctness of the whole set after every epoch) and ranks the examples by
    their forgetting counts summed over runs.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep (exact per class when ``per_class``).
    per_class : bool
        Keep the most forgotten examples within each class with exact per-class budgets (default) or
        over all data.
    features : Tensor of shape (n, d), optional
        The network (``model`` or the proxy) is trained on these features instead of ``x``.
    model : nn.Module, optional
        The network to train: each run trains a deep copy of it (the argument is not modified).
    generator : torch.Generator, int or None
        Seeds initialisation and minibatch order of every run.
    progress : bool
        Show a progress bar over epochs.
    epochs : int
        Presentations ``T`` per run.
    n_runs : int
        Independent training runs whose counts are summed.
    model_fn : callable, optional
        ``model_fn(generator=seed)`` builds a fresh network per run (default: an MLP with one
        hidden layer of 128 units).
    history : bool Tensor of shape (T, n) or (runs, T, n), optional
        A recorded history to rank directly (no training).

    Returns
    -------
    Selection
        Indices from the most to the least forgotten kept example; ``scores`` (n,) are the
        counts (float); ``info`` has ``never_learned`` and ``unforgettable`` (count 0).

    References
    ----------
    Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
    Learning", ICLR 2019.

    Examples
    --------
    >>> h = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 1], [1, 0, 1, 0]])  # T=3, n=4: counts 1, 3, 0, 1
    >>> forgetting(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]), 2, history=h).indices.tolist()
    [1, 3]
    """
    func = "forgetting"
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    gen = check_generator(generator, func)
    if history is not None:
        history = _check_history(history, func)
        if history.shape[-1] != x.shape[0]:
            fail(func, "history", f"a tensor with one column per example ({x.shape[0]})", history)
        counts = forgetting_counts(history)
        runs, steps = (history.shape[0] if history.dim() == 3 else 1), history.shape[-2]
    else:
        epochs = check_int(epochs, "epochs", func, low=1)
        runs = check_int(n_runs, "n_runs", func, low=1)
        steps = epochs
        if model is not None and not isinstance(model, nn.Module):
            fail(func, "model", "an nn.Module or None", model, error=TypeError)
        space = x if features is None else resolve_features(x, features, None, func)
        if model is not None:
            check_model(model, func, like=space)
            _check_outputs(model, space, y, func)  # a label the model cannot output
        counts = torch.zeros(x.shape[0], dtype=torch.int64)
        for _ in range(runs):
            recorder = ForgettingRecorder(space, y)
            if model is None:
                _train_proxy(space, y, model_fn, epochs, recorder, gen, progress, {}, func)
            else:
                seed = int(torch.randint(0, 2**62, (1,), generator=gen))
                train_model(copy.deepcopy(model), space, y.to(space.device), epochs=epochs, callback=recorder,
                            generator=seed, progress=progress)
            counts += recorder.counts()
    scores = counts.to(torch.float64)
    idx = select_by_score(scores, budget, y=y, order="top", per_class=per_class)
    info = {"per_class": per_class, "presentations": steps, "runs": runs,
            "never_learned": int((counts == runs * steps).sum()),  # in every run
            "unforgettable": int((counts == 0).sum())}
    return make_selection(idx, method=func, scores=scores, info=info)
