"""DD (Wang et al. 2018): the unrolled SGD against a hand loop, the meta-gradient against
finite differences, checkpointed == plain, positivity of the learned step sizes, the
learned schedule, determinism and every bad input."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from distillkit.distill import METHODS, distill
from distillkit.distill.dd import _meta_loss, dd, dd_train, step_batches
from distillkit.distill.unroll import _flat_params, unroll_sgd
from distillkit.types import SyntheticSet


def tanh_net(generator=None, d=3, width=4, n_classes=2):
    """A smooth tiny network (no ReLU kinks, so finite differences are exact to O(eps^2))."""
    gen = torch.Generator().manual_seed(int(generator or 0))
    net = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, n_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.7)
    return net


def toy(n=24, d=3, n_classes=2, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.randn(n, d, generator=gen, dtype=dtype) + y[:, None].to(dtype)
    return x, y


def test_registered():
    assert METHODS["dd"] is dd


def test_step_batches_partition_and_cycle():
    assert [t.tolist() for t in step_batches(10, 10)] == [[i] for i in range(10)]
    assert [t.tolist() for t in step_batches(5, 2)] == [[0, 1, 2], [3, 4]]
    assert [t.tolist() for t in step_batches(1, 3)] == [[0], [0], [0]]


def test_unroll_sgd_equals_a_hand_written_sgd_loop():
    x, y = toy()
    net = tanh_net(0).double()
    theta0 = _flat_params(net)
    batches = [(x[:8], y[:8]), (x[8:16], y[8:16]), (x[:8], y[:8])]
    lrs = torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64)
    ours = unroll_sgd(net, theta0, batches, lrs)
    ref = tanh_net(0).double()
    for (xb, yb), lr in zip(batches, lrs.tolist()):
        opt = torch.optim.SGD(ref.parameters(), lr=lr)
        opt.zero_grad()
        F.cross_entropy(ref(xb), yb).backward()
        opt.step()
    assert torch.allclose(ours, _flat_params(ref), atol=1e-12)
    assert torch.equal(_flat_params(net), theta0)  # the module itself is untouched


def _problem(seed=0):
    x, y = toy(seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x_syn = torch.randn(4, 3, generator=gen, dtype=torch.float64)  # ipc 2, sorted by class
    y_syn = torch.tensor([0, 0, 1, 1])
    raw_lr = torch.randn(4, generator=gen, dtype=torch.float64) * 0.3 - 1.0  # inner_steps 2 x inner_epochs 2
    net = tanh_net(seed).double()
    return net, _flat_params(net), x_syn, y_syn, raw_lr, x, y


@pytest.mark.parametrize("checkpoint", [False, True])
def test_meta_gradient_matches_finite_differences(checkpoint):
    net, theta0, x_syn, y_syn, raw_lr, x, y = _problem()

    def loss(xs, rl):
        return _meta_loss(net, theta0, xs, y_syn, rl, x, y, 2, 2, 2, checkpoint)

    xs, rl = x_syn.clone().requires_grad_(True), raw_lr.clone().requires_grad_(True)
    g_x, g_lr = torch.autograd.grad(loss(xs, rl), [xs, rl])
    eps = 1e-6
    for i, j in [(0, 0), (1, 2), (3, 1)]:
        plus, minus = x_syn.clone(), x_syn.clone()
        plus[i, j] += eps
        minus[i, j] -= eps
        fd = (loss(plus, raw_lr) - loss(minus, raw_lr)).item() / (2 * eps)
        assert fd == pytest.approx(g_x[i, j].item(), rel=1e-6, abs=1e-9)
    for k in range(4):
        plus, minus = raw_lr.clone(), raw_lr.clone()
        plus[k] += eps
        minus[k] -= eps
        fd = (loss(x_syn, plus) - loss(x_syn, minus)).item() / (2 * eps)
        assert fd == pytest.approx(g_lr[k].item(), rel=1e-6, abs=1e-9)
    assert g_x.abs().sum() > 0 and g_lr.abs().sum() > 0


def test_checkpointed_gradients_equal_plain_gradients():
    net, theta0, x_syn, y_syn, raw_lr, x, y = _problem(seed=3)
    grads = []
    for checkpoint in (False, True):
        xs, rl = x_syn.clone().requires_grad_(True), raw_lr.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(_meta_loss(net, theta0, xs, y_syn, rl, x, y, 2, 2, 2, checkpoint), [xs, rl]))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_dd_checkpoint_and_plain_runs_agree():
    x, y = toy()
    runs = [dd(x, y, 2, model_fn=tanh_net, steps=3, inner_steps=2, inner_epochs=2, batch_real=10,
               checkpoint=c, generator=5) for c in (False, True)]
    assert torch.allclose(runs[0].x, runs[1].x, atol=1e-10)
    assert runs[0].info["lrs"] == pytest.approx(runs[1].info["lrs"], rel=1e-9)


def test_first_loss_is_the_meta_loss_of_the_initial_set():
    x, y = toy()
    s = dd(x, y, 2, model_fn=tanh_net, steps=1, inner_steps=2, inner_epochs=2, batch_real=24, fixed_init=True,
           init="noise", generator=0, lr_init=0.05)
    net = tanh_net(s.info["init_seed"]).double()  # the fixed network
    raw = torch.full((4,), 0.05, dtype=torch.float64).expm1().log()
    x0 = s.history[0][1]
    # batch_real = n: every real example, in some order (the mean does not depend on it)
    expected = _meta_loss(net, _flat_params(net), x0, s.y, raw, x, y, 2, 2, 2, False)
    assert s.info["losses"][0] == pytest.approx(expected.item(), rel=1e-10)


def test_learned_step_sizes_stay_positive_and_dd_train_replays_them():
    x, y = toy()
    s = dd(x, y, 2, model_fn=tanh_net, steps=6, inner_steps=2, inner_epochs=2, lr_meta=5.0, lr_init=1e-3,
           batch_real=12, generator=1)
    assert isinstance(s, SyntheticSet) and s.method == "dd" and len(s.info["lrs"]) == 4
    assert all(lr > 0 for lr in s.info["lrs"]) and s.lr == pytest.approx(sum(s.info["lrs"]) / 4)
    assert s.info["lrs"] != pytest.approx([1e-3] * 4)  # they did move
    net = tanh_net(7).double()
    theta0 = _flat_params(net)
    lrs = torch.tensor(s.info["lrs"], dtype=torch.float64)
    batches = [(s.x[[0, 2]], s.y[[0, 2]]), (s.x[[1, 3]], s.y[[1, 3]])] * 2
    expected = unroll_sgd(net, theta0, batches, lrs)
    dd_train(net, s)
    assert torch.allclose(_flat_params(net), expected.detach(), atol=1e-12)


def test_history_callback_and_info():
    x, y = toy()
    seen = []
    s = dd(x, y, 1, model_fn=tanh_net, steps=5, inner_steps=2, inner_epochs=1, callback_every=2, batch_real=8,
           callback=lambda step, xs, info: seen.append((step, len(info["losses"]))), generator=0)
    assert [h[0] for h in s.history] == [0, 2, 4, 5] and seen == [(0, 0), (2, 2), (4, 4), (5, 5)]
    assert len(s.info["losses"]) == len(s.info["times"]) == 5 and s.info["skipped"] == []
    assert s.info["hyperparameters"]["inner_steps"] == 2


def test_deterministic_and_input_untouched_and_float32():
    x, y = toy(dtype=torch.float32)
    x0 = x.clone()
    a = distill("dd", x, y, 2, model_fn=tanh_net, steps=2, inner_steps=2, inner_epochs=1, generator=3)
    b = distill("dd", x, y, 2, model_fn=tanh_net, steps=2, inner_steps=2, inner_epochs=1, generator=3)
    c = distill("dd", x, y, 2, model_fn=tanh_net, steps=2, inner_steps=2, inner_epochs=1, generator=4)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert torch.equal(x, x0) and a.x.dtype == torch.float32
    assert a.y.tolist() == [0, 0, 1, 1]


def test_default_model_on_digit_sized_images():
    x = torch.rand(20, 1, 8, 8)
    y = torch.arange(20) % 2
    s = dd(x, y, 1, steps=1, inner_steps=1, inner_epochs=1, batch_real=4, generator=0)
    assert s.x.shape == (2, 1, 8, 8) and torch.isfinite(s.x).all()


@pytest.mark.parametrize(
    "kwargs, error, param",
    [
        (dict(ipc=13), ValueError, "ipc"),
        (dict(ipc=0), ValueError, "ipc"),
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=1.5), TypeError, "steps"),
        (dict(inner_steps=0), ValueError, "inner_steps"),
        (dict(inner_epochs=0), ValueError, "inner_epochs"),
        (dict(lr_init=0.0), ValueError, "lr_init"),
        (dict(lr_init=-0.1), ValueError, "lr_init"),
        (dict(lr_meta=0.0), ValueError, "lr_meta"),
        (dict(batch_real=0), ValueError, "batch_real"),
        (dict(fixed_init=1), TypeError, "fixed_init"),
        (dict(checkpoint="yes"), TypeError, "checkpoint"),
        (dict(init="zeros"), ValueError, "init"),
        (dict(generator=-1), ValueError, "generator"),
        (dict(callback=3), TypeError, "callback"),
        (dict(callback_every=0), ValueError, "callback_every"),
        (dict(progress="no"), TypeError, "progress"),
        (dict(model_fn=5), TypeError, "model_fn"),
        (dict(model_fn=lambda generator: "net"), TypeError, "model_fn"),
        (dict(model_fn=lambda generator: tanh_net(0, d=5)), ValueError, "'x'"),
        (dict(model_fn=lambda generator: tanh_net(0, n_classes=1)), ValueError, "model_fn"),
    ],
)
def test_bad_inputs(kwargs, error, param):
    x, y = toy()
    options = dict(ipc=1, model_fn=tanh_net, steps=1, inner_steps=1, inner_epochs=1)
    options.update(kwargs)
    ipc = options.pop("ipc")
    with pytest.raises(error, match=param):
        dd(x, y, ipc, **options)


def test_bad_data_and_bad_unroll_arguments():
    x, y = toy()
    with pytest.raises(TypeError, match="'y'"):
        dd(x, y.float(), 1, model_fn=tanh_net, steps=1)
    with pytest.raises(ValueError, match="'x'"):
        dd(torch.randn(4, 2, 2, 2, 2), torch.arange(4) % 2, 1, steps=1)
    net = tanh_net(0)
    theta = _flat_params(net)
    with pytest.raises(ValueError, match="'lrs'"):
        unroll_sgd(net, theta, [(x[:2].float(), y[:2])], torch.ones(2))
    with pytest.raises(ValueError, match="'theta'"):
        unroll_sgd(net, theta[:-1], [(x[:2].float(), y[:2])], torch.ones(1))
    with pytest.raises(TypeError, match="'synthetic'"):
        dd_train(net, SyntheticSet(x, y, method="mtt"))
    with pytest.raises(TypeError, match="'model'"):
        dd_train("net", dd(x, y, 1, model_fn=tanh_net, steps=1, inner_steps=1, inner_epochs=1, generator=0))
