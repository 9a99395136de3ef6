"""distillkit.protocols: fixed, disjoint data splits; named variants recorded in every result;
the schedule each protocol trains with; bad inputs."""

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from distillkit.data import load_digits
from distillkit.protocols import DIGITS, FASHION, MNIST, PAPER, Protocol
from distillkit.protocols import _stratified


def _rows(t):
    return {bytes(r.numpy().tobytes()) for r in t.reshape(len(t), -1)}


def _check_disjoint_and_fixed(protocol, sizes):
    a, b = protocol.data(), protocol.data()
    assert all(torch.equal(s, t) for s, t in zip(a, b))  # deterministic
    assert tuple(len(t) for t in a[::2]) == sizes
    pool, val, test = _rows(a.x), _rows(a.x_val), _rows(a.x_test)
    assert len(pool) == sizes[0] and len(val) == sizes[1] and len(test) == sizes[2]  # no repeated image
    assert not (pool & val) and not (pool & test) and not (val & test)
    return a


def test_digits_splits_are_fixed_stratified_and_disjoint():
    d = _check_disjoint_and_fixed(DIGITS, (1052, 300, 445))
    assert torch.bincount(d.y_val).tolist() == [30] * 10
    x_train, _ = load_digits("train")
    x_test, y_test = load_digits("test")
    assert torch.equal(d.x_test, x_test) and torch.equal(d.y_test, y_test)  # the full digits test split
    assert _rows(d.x) | _rows(d.x_val) == _rows(x_train)  # pool + validation = the training split


def test_data_is_a_copy():
    d = DIGITS.data()
    d.x.zero_()
    assert float(DIGITS.data().x.sum()) > 0


def test_mnist_splits_are_fixed_stratified_and_disjoint(mnist_root):
    d = _check_disjoint_and_fixed(MNIST, (5000, 1000, 2000))
    assert torch.bincount(d.y).tolist() == [500] * 10 and torch.bincount(d.y_test).tolist() == [200] * 10
    assert abs(float(d.x.mean())) < 0.05  # normalised
    assert FASHION.dataset == "fashion" and FASHION.data().x.shape == (5000, 1, 28, 28)


def test_stratified_draws_are_disjoint_and_cover():
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2])
    a, b = _stratified(y, [1, None], ["val_per_class", "pool_per_class"], torch.Generator().manual_seed(0))
    assert torch.bincount(y[a]).tolist() == [1, 1, 1]
    assert sorted(a.tolist() + b.tolist()) == list(range(11))
    with pytest.raises(ValueError, match="The 'pool_per_class' parameter of Protocol.data must be at most the 4 "
                                         "images of class 0"):
        _stratified(y, [1, 4], ["val_per_class", "pool_per_class"], torch.Generator().manual_seed(0))


def test_protocol_networks_and_schedules():
    assert DIGITS.depth == 2 and DIGITS.model_fn()(generator=0).feature_dim == 32 * 2 * 2
    assert MNIST.width == 32 and MNIST.depth == 3 and MNIST.steps is not None
    assert PAPER.width == 128 and PAPER.schedule == "reference" and PAPER.epochs == 300
    assert PAPER.augment_epochs == 1000 and PAPER.test_per_class is None and PAPER.steps is None
    assert set(DIGITS.budgets) == {1, 10, 50} and DIGITS.seeds == (0, 1, 2)


def _tiny(**changes):
    options = dict(width=4, epochs=2, steps=None)
    options.update(changes)
    return DIGITS.variant("digits-tiny", "tests must run in seconds", **options)


def test_variant_is_named_and_recorded_in_every_result():
    d = DIGITS.data()
    tiny = _tiny()
    assert tiny.name == "digits-tiny" and tiny.base == "digits" and DIGITS.reason == ""
    r = tiny.evaluate(d.x[:20], d.y[:20], seeds=(0, 1))
    assert r.protocol["name"] == "digits-tiny" and r.protocol["reason"] == "tests must run in seconds"
    assert r.protocol["base"] == "digits" and r.protocol["evaluated_on"] == "test"
    assert r.protocol["augmentation"] is False and r.seeds == (0, 1)
    v = tiny.evaluate(d.x[:20], d.y[:20], seeds=(0,), on="validation")
    assert v.protocol["evaluated_on"] == "validation"
    again = tiny.evaluate(d.x[:20], d.y[:20], seeds=(0, 1))
    assert again.accuracies == r.accuracies


def test_evaluate_uses_the_protocol_schedule_and_augment_epochs():
    d = DIGITS.data()
    lrs = []
    handle = register_optimizer_step_post_hook(lambda opt, a, k: lrs.append(opt.param_groups[0]["lr"]))
    try:
        ref = _tiny(schedule="reference", augment_epochs=4)
        plain = ref.evaluate(d.x[:10], d.y[:10], seeds=(0,))
        n_plain = len(lrs)
        aug = ref.evaluate(d.x[:10], d.y[:10], seeds=(0,), augment=lambda xb, g: xb)
        n_aug = len(lrs) - n_plain
        lrs.clear()
        _tiny(steps=9).evaluate(d.x[:10], d.y[:10], seeds=(0,))
    finally:
        handle.remove()
    assert (n_plain, n_aug) == (3, 5)  # reference: epochs + 1 passes of one step; 4 epochs with augmentation
    assert plain.protocol["augmentation"] is False and aug.protocol["augmentation"] is True
    assert aug.protocol["epochs"] == 4 and plain.protocol["schedule"] == "reference"
    assert len(lrs) == 9  # steps: at least 9 optimiser steps


def test_a_callers_own_test_set_or_schedule_is_refused():
    # every accuracy is measured on the protocol's own splits, with its own schedule (a change
    # of schedule is a named variant)
    d = DIGITS.data()
    with pytest.raises(TypeError):
        _tiny().evaluate(d.x[:20], d.y[:20], d.x_val, d.y_val, seeds=(0,))
    with pytest.raises(TypeError):
        _tiny().evaluate(d.x[:20], d.y[:20], seeds=(0,), epochs=3)
    import distillkit.protocols as protocols

    assert not hasattr(protocols, "CPU")


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: DIGITS.variant("x", ""), ValueError,
         "The 'reason' parameter of Protocol.variant must be a non-empty str"),
        (lambda: DIGITS.variant("x", None), TypeError,
         "The 'reason' parameter of Protocol.variant must be a non-empty"),
        (lambda: DIGITS.variant("digits", "same name"), ValueError,
         "The 'name' parameter of Protocol.variant must be a name other than the base protocol's"),
        (lambda: DIGITS.variant("x", "why", widht=3), TypeError,
         "The 'widht' parameter of Protocol.variant must be a field of Protocol"),
        (lambda: DIGITS.variant("x", "why", name="y"), TypeError, "multiple values|'name' parameter"),
        (lambda: DIGITS.variant("x", "why", steps=0), ValueError,
         r"The 'steps' parameter of Protocol must be an int in \[1, inf\]. Got 0 instead."),
        (lambda: Protocol("p", dataset="cifar"), ValueError,
         "The 'dataset' parameter of Protocol must be one of 'digits', 'mnist', 'fashion'. Got 'cifar' instead."),
        (lambda: Protocol("p", schedule="cosine"), ValueError, "The 'schedule' parameter of Protocol"),
        (lambda: Protocol("p", budgets=()), ValueError, "The 'budgets' parameter of Protocol must be a non-empty"),
        (lambda: Protocol("p", seeds=3), TypeError, "The 'seeds' parameter of Protocol must be a non-empty sequence"),
        (lambda: DIGITS.evaluate(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), on="train"), ValueError,
         "The 'on' parameter of Protocol.evaluate must be one of 'test', 'validation'. Got 'train' instead."),
        (lambda: DIGITS.evaluate(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), seeds=3), TypeError,
         "The 'seeds' parameter of Protocol.evaluate must be a non-empty sequence of ints"),
    ],
)
def test_bad_inputs(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_train_gives_the_network_evaluate_measures():
    from distillkit import accuracy
    from distillkit.protocols import DIGITS

    quick = DIGITS.variant("digits-quick", "a unit test must run in seconds", epochs=3, steps=5)
    x, y, _, _, x_test, y_test = quick.data()
    net = quick.train(x[:40], y[:40], generator=3)
    assert not net.training
    assert quick.evaluate(x[:40], y[:40], seeds=(3,)).accuracies == (accuracy(net, x_test, y_test),)


def test_train_callback_sees_every_epoch_and_changes_nothing():
    from distillkit.coresets import ForgettingRecorder
    from distillkit.protocols import DIGITS

    quick = DIGITS.variant("digits-quick", "a unit test must run in seconds", epochs=3, steps=None)
    x, y = quick.data()[:2]
    x, y = x[:60], y[:60]
    epochs, rec = [], ForgettingRecorder(x, y)

    def callback(epoch, model):
        epochs.append(epoch)
        rec(epoch, model)

    with_cb = quick.train(x, y, generator=1, callback=callback)
    plain = quick.train(x, y, generator=1)
    assert epochs == [0, 1, 2] and rec.history.shape == (3, 60)
    assert all(torch.equal(p, q) for p, q in zip(with_cb.parameters(), plain.parameters()))


def test_random_baseline_is_the_documented_draw_and_weights():
    from distillkit import class_size_weights
    from distillkit.coresets import select
    from distillkit.protocols import DIGITS

    quick = DIGITS.variant("digits-quick", "a unit test must run in seconds", epochs=2, steps=None)
    x, y = quick.data()[:2]
    result = quick.random_baseline(2, seeds=(0, 1))
    assert result.seeds == (0, 1) and result.protocol["baseline"] == "random"
    for seed, acc in zip((0, 1), result.accuracies):
        idx = select("random", x, y, 20, generator=seed).indices
        assert quick.evaluate(x[idx], y[idx], seeds=(seed,)).accuracies == (acc,)
    weighted = quick.random_baseline(2, seeds=(0,), weights="class_size")
    idx = select("random", x, y, 20, generator=0).indices
    w = class_size_weights(y[idx], y)
    assert torch.isclose(w.sum(), torch.tensor(float(len(y)), dtype=w.dtype))
    assert quick.evaluate(x[idx], y[idx], weights=w, seeds=(0,)).accuracies == weighted.accuracies
    with pytest.raises(ValueError, match="weights"):
        quick.random_baseline(2, weights="uniform")
    with pytest.raises(ValueError, match="ipc"):
        quick.random_baseline(0)


def test_mlp_variant_builds_and_records_an_mlp():
    from distillkit.models import MLP
    from distillkit.protocols import DIGITS

    mlp = DIGITS.variant("digits-mlp", "cross-architecture check", arch="mlp", mlp_hidden=(16,), epochs=2, steps=None)
    net = mlp.model_fn()(generator=0)
    assert isinstance(net, MLP) and net.in_features == 64
    x, y, *_ = mlp.data()
    r = mlp.evaluate(x[:20], y[:20], seeds=(0,), on="validation")
    assert r.protocol["arch"] == "mlp" and r.protocol["mlp_hidden"] == (16,)
    assert DIGITS.arch == "convnet"


@pytest.mark.parametrize("changes, param", [({"arch": "resnet"}, "arch"), ({"mlp_hidden": ()}, "mlp_hidden"),
                                            ({"mlp_hidden": (0,)}, "mlp_hidden")])
def test_bad_arch_fields_are_named(changes, param):
    from distillkit.protocols import DIGITS

    with pytest.raises((ValueError, TypeError), match=f"'{param}' parameter of Protocol"):
        DIGITS.variant("bad", "a test", **changes)
