"""KIP (Nguyen et al. 2021): kernel ridge regression against torch.linalg.solve, the
empirical NTK against a naive per-example gradient loop (symmetric, PSD), the first KIP loss
and Adam step against a closed-form computation, label learning, determinism, bad inputs."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from distillkit.distill import METHODS, distill
from distillkit.distill.kernels import empirical_ntk, make_kernel, median_bandwidth, ntk_features
from distillkit.distill.kip import kip
from distillkit.distill.losses import gaussian_kernel, kernel_ridge
from distillkit.models import MLP


def toy(n=60, d=5, n_classes=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.randn(n, d, generator=gen, dtype=dtype) + y[:, None].to(dtype)
    return x, y


def naive_ntk(model, x1, x2):
    """(1/C) sum_c <grad f_c(a), grad f_c(b)>, one autograd.grad call per example and output."""
    params = list(model.parameters())

    def jac(xi):
        out = model(xi[None])[0]
        return torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(out[c], params, retain_graph=True)])
                            for c in range(out.numel())])  # (C, P)

    k = torch.empty(len(x1), len(x2), dtype=x1.dtype)
    for i in range(len(x1)):
        for j in range(len(x2)):
            ji, jj = jac(x1[i]), jac(x2[j])
            k[i, j] = (ji * jj).sum() / ji.shape[0]
    return k


def test_registered():
    assert METHODS["kip"] is kip


def test_kernel_ridge_equals_linalg_solve():
    x, y = toy()
    xs, ys = x[:9], F.one_hot(y[:9], 3).double() - 1 / 3
    kernel = gaussian_kernel(2.0)
    for reg in (0.0, 1e-6, 0.1):
        k_ss = kernel(xs, xs)
        system = k_ss + reg * torch.trace(k_ss) / 9 * torch.eye(9, dtype=torch.float64)
        expected = kernel(x, xs) @ torch.linalg.solve(system, ys)
        assert torch.allclose(kernel_ridge(xs, ys, x, kernel, reg), expected, atol=1e-10)
    # interpolation: with no ridge the support labels are reproduced exactly
    assert torch.allclose(kernel_ridge(xs, ys, xs, kernel, 0.0), ys, atol=1e-8)


@pytest.mark.parametrize("n_out", [1, 3])
def test_empirical_ntk_equals_naive_loop_and_is_symmetric_psd(n_out):
    torch.manual_seed(0)  # only for the test's own nn.Linear default init
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, n_out)).double()
    x1 = torch.randn(5, 4, dtype=torch.float64)
    x2 = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(empirical_ntk(model, x1, x2), naive_ntk(model, x1, x2), atol=1e-12)
    k = empirical_ntk(model, x1)
    assert torch.allclose(k, naive_ntk(model, x1, x1), atol=1e-12)
    assert torch.allclose(k, k.T, atol=1e-14)
    assert torch.linalg.eigvalsh(k).min() > -1e-10


def test_ntk_features_average_over_networks_and_keep_gradients():
    a, b = MLP(4, 2, hidden=(5,), generator=1).double(), MLP(4, 2, hidden=(5,), generator=2).double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    f = ntk_features([a, b], x)
    expected = (empirical_ntk(a, x.detach()) + empirical_ntk(b, x.detach())) / 2
    assert torch.allclose(f @ f.T, expected, atol=1e-12)
    (g,) = torch.autograd.grad((f @ f.T).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert ntk_features(a, x, chunk=2).shape == ntk_features(a, x, chunk=100).shape == (6, 2 * 37)


def test_median_bandwidth_and_make_kernel():
    assert median_bandwidth(torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])) == pytest.approx(5.0)
    x, _ = toy()
    k = make_kernel("rbf", x, generator=0)
    sigma = median_bandwidth(x, generator=0)
    assert torch.allclose(k(x[:3], x[3:5]), gaussian_kernel(sigma)(x[:3], x[3:5]))
    ntk = make_kernel("ntk", x.float(), n_models=2, generator=0)
    gram = ntk(x[:4].float(), x[:4].float())
    assert gram.shape == (4, 4) and torch.allclose(gram, gram.T, atol=1e-5)
    same = make_kernel("ntk", x.float(), n_models=2, generator=0)
    assert torch.equal(same(x[:4].float(), x[4:6].float()), ntk(x[:4].float(), x[4:6].float()))
    custom = lambda a, b: a @ b.T  # noqa: E731
    assert make_kernel(custom, x) is custom


@pytest.mark.parametrize("kernel", ["rbf", "ntk"])
def test_first_loss_and_adam_step_match_a_closed_form(kernel):
    x, y = toy(n=30)
    lr = 0.01
    s = kip(x, y, 2, kernel=kernel, n_models=2, steps=1, lr=lr, batch_real=30, generator=0)  # target = all data
    k = s.info["kernel_fn"]
    x0 = s.history[0][1].clone().requires_grad_(True)
    ys = F.one_hot(s.y, 3).double() - 1 / 3
    yt = F.one_hot(y, 3).double() - 1 / 3
    k_ss = k(x0, x0)
    pred = k(x, x0) @ torch.linalg.solve(k_ss + 1e-6 * torch.trace(k_ss) / 6 * torch.eye(6, dtype=torch.float64), ys)
    loss = 0.5 * ((pred - yt) ** 2).mean()
    assert s.info["losses"][0] == pytest.approx(loss.item(), rel=1e-8)
    (g,) = torch.autograd.grad(loss, x0)
    adam_first_step = -lr * g / (g.abs() + 1e-8)  # Adam's bias-corrected first step
    assert torch.allclose(s.x - x0.detach(), adam_first_step, atol=1e-6)
    assert s.info["accuracies"][0] == pytest.approx(float((pred.argmax(1) == y).double().mean()))


def test_kip_lowers_the_loss_and_learn_labels_updates_y():
    x, y = toy()
    fixed = kip(x, y, 2, kernel="rbf", steps=30, batch_real=60, generator=0)
    learned = kip(x, y, 2, kernel="rbf", steps=30, batch_real=60, learn_labels=True, generator=0)
    assert fixed.info["losses"][-1] < fixed.info["losses"][0]
    assert fixed.y.dtype == torch.int64 and fixed.y.tolist() == [0, 0, 1, 1, 2, 2]
    start = F.one_hot(fixed.y, 3).double() - 1 / 3
    assert torch.equal(fixed.info["labels"], start)  # not learned: the centred one-hot targets
    assert learned.y.shape == (6, 3) and learned.y.is_floating_point()
    assert not torch.allclose(learned.y, start) and torch.equal(learned.y, learned.info["labels"])
    assert learned.info["losses"][-1] < fixed.info["losses"][-1]  # more freedom, lower loss


def test_deterministic_and_input_untouched():
    x, y = toy(dtype=torch.float32)
    x0 = x.clone()
    a = distill("kip", x, y, 3, kernel="ntk", n_models=2, steps=3, batch_real=12, generator=5)
    b = distill("kip", x, y, 3, kernel="ntk", n_models=2, steps=3, batch_real=12, generator=5)
    c = distill("kip", x, y, 3, kernel="ntk", n_models=2, steps=3, batch_real=12, generator=6)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x) and torch.equal(x, x0)
    assert a.x.dtype == torch.float32 and a.method == "kip" and len(a.info["losses"]) == 3


def test_feature_cache_does_not_change_the_result():
    x, y = toy(dtype=torch.float64)
    cached = kip(x, y, 2, n_models=2, steps=3, batch_real=21, generator=1)
    uncached = kip(x, y, 2, n_models=2, steps=3, batch_real=21, cache_bytes=0, generator=1)
    assert torch.allclose(cached.x, uncached.x, atol=1e-10)


def test_images_with_the_default_ntk_network_and_a_callable_kernel():
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 3
    s = kip(x, y, 1, steps=2, batch_real=9, n_models=1, generator=0)
    assert s.x.shape == (3, 1, 8, 8) and torch.isfinite(s.x).all()
    t = kip(x, y, 1, kernel=lambda a, b: (a @ b.T + 1) ** 2, steps=2, batch_real=9, generator=0)
    assert t.info["hyperparameters"]["kernel"] == "callable" and t.x.shape == (3, 1, 8, 8)


@pytest.mark.parametrize(
    "kwargs, error, param",
    [
        (dict(ipc=21), ValueError, "ipc"),
        (dict(kernel="laplace"), ValueError, "kernel"),
        (dict(kernel=3), TypeError, "kernel"),
        (dict(n_models=0), ValueError, "n_models"),
        (dict(steps=0), ValueError, "steps"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=-0.04), ValueError, "lr"),
        (dict(reg=-1.0), ValueError, "reg"),
        (dict(learn_labels="yes"), TypeError, "learn_labels"),
        (dict(batch_real=2), ValueError, "batch_real"),
        (dict(cache_bytes=-1), ValueError, "cache_bytes"),
        (dict(init="zeros"), ValueError, "init"),
        (dict(callback="print"), TypeError, "callback"),
        (dict(callback_every=0), ValueError, "callback_every"),
        (dict(progress="yes"), TypeError, "progress"),
        (dict(generator="seed"), TypeError, "generator"),
        (dict(model_fn=4), TypeError, "model_fn"),
        (dict(model_fn=lambda generator: MLP(7, 1, generator=generator)), ValueError, "'x'"),
    ],
)
def test_bad_inputs(kwargs, error, param):
    x, y = toy(dtype=torch.float32)
    options = dict(ipc=1, steps=1, batch_real=9)
    options.update(kwargs)
    ipc = options.pop("ipc")
    with pytest.raises(error, match=param):
        kip(x, y, ipc, **options)
    with pytest.raises(TypeError, match="'model'"):
        empirical_ntk("net", x)
    with pytest.raises(ValueError, match="n_models"):
        make_kernel("ntk", x, n_models=0)
    with pytest.raises(ValueError, match="'kernel'"):
        make_kernel("linear", x)
