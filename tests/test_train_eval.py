"""train_model's step-based and reference schedules, EvalResult's text, majority_rate and
class_size_weights."""

import math

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from distillkit.evaluate import EvalResult, class_size_weights, evaluate_set, majority_rate
from distillkit.models import MLP
from distillkit.train import total_epochs, train_model


def _data(n, generator=0):
    g = torch.Generator().manual_seed(generator)
    y = torch.arange(n) % 3
    return torch.randn(n, 4, generator=g) + y.float().unsqueeze(1), y


def _net():
    return MLP(4, 3, hidden=(6,), generator=0)


class _Steps:
    """Counts optimiser steps (all optimisers) and their learning rates, with torch's global hook."""

    def __enter__(self):
        self.lrs = []
        self.handle = register_optimizer_step_post_hook(lambda opt, a, k: self.lrs.append(opt.param_groups[0]["lr"]))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --- steps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, batch_size, epochs, steps, expected",
    [
        (10, 256, 5, 23, 23),    # one batch per epoch: 23 epochs
        (40, 16, 2, 10, 12),     # 3 batches per epoch: ceil(10 / 3) = 4 epochs
        (40, 16, 2, None, 6),    # no steps: 2 epochs
        (40, 16, 5, 3, 15),      # steps below epochs x batches: epochs decide
    ],
)
def test_steps_is_a_minimum_number_of_optimizer_steps(n, batch_size, epochs, steps, expected):
    x, y = _data(n)
    with _Steps() as s:
        train_model(_net(), x, y, epochs=epochs, steps=steps, batch_size=batch_size, generator=0)
    assert len(s.lrs) == expected
    assert total_epochs(n, epochs=epochs, steps=steps, batch_size=batch_size) * math.ceil(n / batch_size) == expected


def test_steps_moves_the_learning_rate_drop_to_half_of_the_longer_run():
    x, y = _data(10)
    with _Steps() as s:
        train_model(_net(), x, y, epochs=2, steps=6, generator=0)
    assert [round(v, 6) for v in s.lrs] == [0.01] * 3 + [0.001] * 3


def test_batch_is_min_of_batch_size_and_n():
    x, y = _data(10)
    sizes = []
    net = _net()
    net.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[0]))
    train_model(net, x, y, epochs=1, steps=3, batch_size=256, generator=0)
    assert sizes == [10, 10, 10]


def _book_by_hand(x, y, epochs, batch_size, seed):
    """The book schedule written out: one SGD, lr x0.1 from epoch epochs // 2."""
    net, g = _net(), torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for epoch in range(epochs):
        if epoch == epochs // 2 and epochs > 1:
            opt.param_groups[0]["lr"] = 0.001
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def test_without_steps_the_book_schedule_is_unchanged():
    x, y = _data(30)
    by_hand = _book_by_hand(x, y, epochs=5, batch_size=8, seed=3)
    lib = train_model(_net(), x, y, epochs=5, batch_size=8, generator=3)
    small_steps = train_model(_net(), x, y, epochs=5, steps=7, batch_size=8, generator=3)  # 7 < 5 x 4 steps
    for a, b, c in zip(by_hand.parameters(), lib.parameters(), small_steps.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)


# --- the reference schedule ----------------------------------------------------------------


def _reference_by_hand(x, y, Epoch, batch_size, seed, decay_after):
    """evaluate_synset of VICO-UoE/DatasetCondensation (utils.py) written out: Epoch + 1 passes;
    after pass ``decay_after`` (the reference: Epoch // 2 + 1) lr x0.1 and a new SGD."""
    net, g, lr = _net(), torch.Generator().manual_seed(seed), 0.01
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.0005)
    for ep in range(Epoch + 1):
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            loss = nn.CrossEntropyLoss()(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep in [decay_after]:
            lr *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.0005)
    return net


def test_reference_schedule_replays_evaluate_synset_exactly():
    x, y = _data(20)
    Epoch = 6
    lib = train_model(_net(), x, y, epochs=Epoch, schedule="reference", batch_size=8, generator=5)
    ref = _reference_by_hand(x, y, Epoch, 8, 5, decay_after=Epoch // 2 + 1)
    assert all(torch.equal(a, b) for a, b in zip(lib.parameters(), ref.parameters()))
    # the index matters, and so does the restart: neither Epoch // 2 nor the book schedule matches
    early = _reference_by_hand(x, y, Epoch, 8, 5, decay_after=Epoch // 2)
    book = train_model(_net(), x, y, epochs=Epoch + 1, batch_size=8, generator=5)
    assert not all(torch.equal(a, b) for a, b in zip(lib.parameters(), early.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(lib.parameters(), book.parameters()))


def test_reference_schedule_counts_and_rates():
    x, y = _data(10)
    with _Steps() as s:
        train_model(_net(), x, y, epochs=4, schedule="reference", generator=0)
    # 5 passes of one step; lr drops after pass 4 // 2 + 1 = 3
    assert [round(v, 6) for v in s.lrs] == [0.01] * 4 + [0.001]
    with _Steps() as s:
        train_model(_net(), x, y, epochs=2, steps=6, schedule="reference", generator=0)
    assert len(s.lrs) == 7  # epochs -> 6, plus the reference's extra pass


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(steps=0), ValueError, r"The 'steps' parameter of train_model must be an int in \[1, inf\]. Got 0"),
        (dict(steps=2.5), TypeError, "'steps' parameter of train_model must be an int"),
        (dict(schedule="cosine"), ValueError,
         "The 'schedule' parameter of train_model must be one of 'book', 'reference'. Got 'cosine' instead."),
        (dict(schedule=None), TypeError, "'schedule' parameter of train_model"),
    ],
)
def test_train_bad_schedule_inputs(kwargs, error, match):
    x, y = _data(6)
    with pytest.raises(error, match=match):
        train_model(_net(), x, y, epochs=1, **kwargs)


# --- statistics ----------------------------------------------------------------------------


def test_eval_result_text_one_seed_and_several():
    assert str(EvalResult((0.721,), (0,))) == "72.1 (1 seed)"
    r = EvalResult((0.5, 0.7, 0.9), (0, 1, 2))
    assert str(r) == "70.0 ± 20.0"
    assert r.std == pytest.approx(0.2)  # sample std (k - 1): the population std would be 16.3
    assert "+-" not in str(r) and "± 0.0" not in str(EvalResult((0.5,), (3,)))


def test_evaluate_set_records_augmentation():
    x, y = _data(12)
    make = lambda generator: MLP(4, 3, hidden=(6,), generator=generator)  # noqa: E731
    plain = evaluate_set(make, x, y, x, y, seeds=(0,), epochs=1)
    aug = evaluate_set(make, x, y, x, y, seeds=(0,), epochs=1, augment=lambda xb, g: xb + 0.0)
    assert plain.protocol["augmentation"] is False and aug.protocol["augmentation"] is True
    assert "augment" not in aug.protocol


def test_majority_rate():
    y = torch.tensor([2, 2, 2, 0, 1, 2, 0, 0])
    assert majority_rate(y) == 0.5
    assert majority_rate(y, y_train=torch.tensor([0, 0, 1])) == 3 / 8
    assert majority_rate(torch.tensor([1, 0])) == 0.5  # tie: the smallest label
    with pytest.raises(TypeError, match="The 'y' parameter of majority_rate must be an integer tensor"):
        majority_rate(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="The 'y' parameter of majority_rate must be a tensor with at least 1 rows"):
        majority_rate(torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="The 'y_train' parameter of majority_rate must be non-negative"):
        majority_rate(y, y_train=torch.tensor([-1, 0]))


def test_class_size_weights_by_hand_and_like_craig():
    y_pool = torch.tensor([0] * 6 + [1] * 3 + [2] * 9)
    w = class_size_weights(torch.tensor([0, 0, 1, 2, 2, 2]), y_pool)
    assert w.tolist() == [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert class_size_weights(torch.tensor([2, 0]), y_pool).tolist() == [9.0, 6.0]

    from distillkit.coresets import select

    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 30 + [1] * 12 + [2] * 18)
    x = torch.randn(60, 3, generator=g) + y.float().unsqueeze(1)
    sel = select("craig", x, y, 12, features=x)
    ours = class_size_weights(y[sel.indices], y)
    for c in range(3):  # both give a class weights that sum to its size in the pool
        members = y[sel.indices] == c
        assert float(ours[members].sum()) == pytest.approx(float((y == c).sum()))
        assert float(sel.weights[members].sum()) == pytest.approx(float((y == c).sum()))


def test_class_size_weights_bad_inputs():
    with pytest.raises(ValueError, match="The 'y_subset' parameter of class_size_weights must be labels of classes "
                                         "present in y_pool. Got class 3, which y_pool does not contain instead."):
        class_size_weights(torch.tensor([3]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="The 'y_pool' parameter of class_size_weights must be an int64 tensor"):
        class_size_weights(torch.tensor([0]), torch.tensor([0], dtype=torch.int32))
