"""Tests of DC, DSA and DM (distillkit.distill.dc, distillkit.distill.dm) on tiny problems."""

import sys

import pytest
import torch
import torch.nn.functional as F

import distillkit.distill  # noqa: F401  (registers the methods)
from distillkit.data import load_digits
from distillkit.distill import METHODS, distill
from distillkit.distill._base import init_synthetic
from distillkit.distill.augment import DIGITS_STRATEGY
from distillkit.distill.losses import distribution_matching_loss, gradient_matching_distance
from distillkit.models import ConvNet

dc_mod = sys.modules["distillkit.distill.dc"]
dm_mod = sys.modules["distillkit.distill.dm"]
dc, dsa, default_loops = dc_mod.dc, dc_mod.dsa, dc_mod.default_loops
dm = dm_mod.dm


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    keep = y < 4  # four classes keep every test fast
    return x[keep], y[keep]


def small_net(generator=None):
    return ConvNet(1, 4, im_size=8, width=8, depth=2, generator=generator)


def fixed_net(generator=None):  # ignores the seed: the same network every step
    return ConvNet(1, 4, im_size=8, width=8, depth=2, generator=123)


def test_registered():
    assert METHODS["dc"] is dc and METHODS["dsa"] is dsa and METHODS["dm"] is dm


def test_default_loops_table_and_rule():
    table = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
    for ipc, loops in table.items():
        assert default_loops(ipc) == loops
    assert default_loops(5) == (5, 50)
    assert default_loops(25) == (25, 20)
    assert default_loops(200) == (50, 10)
    with pytest.raises(ValueError, match="'ipc' parameter of default_loops"):
        default_loops(0)


def _matching_loss(net, x, y, x_syn, y_syn):
    params = list(net.parameters())
    total = 0.0
    for c in torch.unique(y).tolist():
        g_real = torch.autograd.grad(F.cross_entropy(net(x[y == c]), y[y == c]), params)
        g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn[y_syn == c]), y_syn[y_syn == c]), params)
        total += float(gradient_matching_distance(g_syn, g_real))
    return total


def test_dc_one_step_decreases_the_matching_loss(digits):
    x, y = digits
    # batch_real larger than every class: the real batch is the whole class, so the target is fixed
    x0, y0 = init_synthetic(x, y, 2, init="real", generator=0)
    s = dc(x, y, 2, model_fn=fixed_net, steps=1, outer_loop=1, lr_img=0.01, batch_real=1000, init="real",
           generator=0)
    net = fixed_net()
    before, after = _matching_loss(net, x, y, x0, y0), _matching_loss(net, x, y, s.x, s.y)
    assert after < before
    assert s.info["losses"][0] == pytest.approx(before, rel=1e-4)  # the reported loss is the one matched


def test_dm_one_step_decreases_the_matching_loss(digits):
    x, y = digits
    x0, y0 = init_synthetic(x, y, 3, init="real", generator=0)
    s = dm(x, y, 3, model_fn=fixed_net, steps=1, lr_img=0.1, batch_real=1000, dsa=False, generator=0)
    net = fixed_net()

    def loss(xs):
        with torch.no_grad():
            return sum(float(distribution_matching_loss(net.embed(x[y == c]), net.embed(xs[y0 == c])))
                       for c in range(4))

    assert loss(s.x) < loss(x0)
    assert s.info["losses"][0] == pytest.approx(loss(x0), rel=1e-4)


@pytest.mark.parametrize("method", ["dc", "dsa", "dm"])
def test_deterministic_given_seed(digits, method):
    x, y = digits
    opts = dict(model_fn=small_net, steps=2, batch_real=16)
    if method != "dc":
        opts["dsa_strategy"] = DIGITS_STRATEGY
    a = distill(method, x, y, 2, generator=5, **opts)
    b = distill(method, x, y, 2, generator=5, **opts)
    c = distill(method, x, y, 2, generator=6, **opts)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert a.method == method and len(a.info["losses"]) == 2


def test_inputs_not_mutated_and_result_detached(digits):
    x, y = digits
    x_copy = x.clone()
    s = dm(x, y, 1, model_fn=small_net, steps=2, batch_real=8, dsa_strategy=DIGITS_STRATEGY, generator=0)
    assert torch.equal(x, x_copy) and not s.x.requires_grad


def test_vectorized_equals_loop(digits):
    x, y = digits
    for metric in ("dc", "cos", "mse"):
        opts = dict(model_fn=small_net, steps=1, outer_loop=1, batch_real=40, metric=metric, generator=3,
                    init="real", dsa=True, dsa_strategy=DIGITS_STRATEGY)
        loop = dc(x, y, 2, vectorize=False, **opts)
        vec = dc(x, y, 2, vectorize=True, **opts)
        assert vec.info["losses"][0] == pytest.approx(loop.info["losses"][0], rel=1e-4)
        assert torch.allclose(vec.x, loop.x, atol=1e-5)


def test_dm_one_forward_equals_per_class_forwards(digits):
    x, y = digits
    net = small_net(generator=0)
    real = [x[y == c][:20] for c in range(4)]
    syn = [x[y == c][20:22] for c in range(4)]
    batched = dm_mod._all_classes_loss(net, real, syn, None)
    per_class = sum(dm_mod._class_loss(net, r, s, None) for r, s in zip(real, syn))
    assert float(batched) == pytest.approx(float(per_class), rel=1e-5)
    uneven = [real[0][:5]] + real[1:]
    assert float(dm_mod._all_classes_loss(net, uneven, syn, None)) == pytest.approx(
        float(sum(dm_mod._class_loss(net, r, s, None) for r, s in zip(uneven, syn))), rel=1e-5)


def test_dm_per_class_path_equals_batched_path_loss_and_gradient(digits):
    """The CPU path (one forward per class, real batches in chunks) and the CUDA path (one forward
    over all classes) give the same loss and the same image gradient, with and without a robust
    target; 100 real images per class exercise the chunking (64 per forward)."""
    x, y = digits
    net = small_net(generator=0)
    for p in net.parameters():
        p.requires_grad_(False)
    real = [x[y == c][:100] for c in range(4)]
    for robust in (None, FakeFeatureRobust()):
        grads, values = [], []
        for loss_fn in (dm_mod._all_classes_loss, dm_mod._per_class_loss):
            x_syn = torch.cat([x[y == c][100:103] for c in range(4)]).clone().requires_grad_(True)
            loss = loss_fn(net, real, list(torch.split(x_syn, 3)), robust)
            (grad,) = torch.autograd.grad(loss, x_syn)
            values.append(float(loss))
            grads.append(grad)
        assert values[1] == pytest.approx(values[0], rel=1e-5)
        assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-6 * float(grads[0].abs().max()))
    chunked = dm_mod._embed_real(net, real[0])
    with torch.no_grad():
        assert torch.allclose(chunked, net.embed(real[0]), atol=1e-5)


def test_dm_cpu_default_takes_the_per_class_path(digits, monkeypatch):
    x, y = digits
    calls = []
    for name in ("_all_classes_loss", "_per_class_loss"):
        original = getattr(dm_mod, name)
        monkeypatch.setattr(dm_mod, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    dm(x, y, 1, model_fn=small_net, steps=2, batch_real=8, dsa=False, generator=0)
    assert calls == ["_per_class_loss"] * 2
    assert not dm_mod._batched_forward(small_net(generator=0), "cpu")
    assert dm_mod._batched_forward(small_net(generator=0), "cuda")
    bn_net = ConvNet(1, 4, im_size=8, width=8, depth=2, norm="batch", generator=0)
    assert dm_mod._batched_forward(bn_net, "cpu")  # the reference's ConvNetBN branch: one batch of all classes
    calls.clear()
    dm(x, y, 1, model_fn=lambda generator=None: ConvNet(1, 4, im_size=8, width=8, depth=2, norm="batch",
                                                         generator=generator),
       steps=1, batch_real=8, dsa=False, generator=0)
    assert calls == ["_all_classes_loss"]


def test_per_class_step_mode_runs_and_differs(digits):
    x, y = digits
    opts = dict(model_fn=small_net, steps=1, batch_real=16, generator=0)
    a = dc(x, y, 1, **opts)
    b = dc(x, y, 1, per_class_step=True, **opts)
    assert a.x.shape == b.x.shape and not torch.equal(a.x, b.x)
    c = dm(x, y, 1, dsa=False, **opts)
    d = dm(x, y, 1, dsa=False, per_class_step=True, **opts)
    assert not torch.equal(c.x, d.x)


class FakeGradientRobust:
    """Real-side loss: cross-entropy of the first half of the batch only (changes the gradient direction)."""

    def __init__(self):
        self.calls = []

    def gradient_loss(self, net, x_real, y_real, x_syn, y_syn):
        self.calls.append((x_real.shape[0], int(y_real[0]), x_syn.shape[0], int(y_syn[0])))
        half = max(1, x_real.shape[0] // 2)
        return F.cross_entropy(net(x_real[:half]), y_real[:half])


class FakeFeatureRobust:
    def __init__(self):
        self.calls = 0

    def feature_target(self, f_real, f_syn):
        self.calls += 1
        return f_real.mean(0) + 1.0


def test_robust_hook_is_called_and_changes_the_result(digits):
    x, y = digits
    hook = FakeGradientRobust()
    opts = dict(model_fn=small_net, steps=2, batch_real=10, generator=0)
    plain = dc(x, y, 2, outer_loop=1, **opts)
    robust = dc(x, y, 2, outer_loop=1, robust=hook, **opts)
    assert len(hook.calls) == 2 * 4
    assert sorted({c[1] for c in hook.calls}) == [0, 1, 2, 3] and all(c[0] == 10 and c[2] == 2 for c in hook.calls)
    assert not torch.allclose(plain.x, robust.x)
    feat = FakeFeatureRobust()
    a = dm(x, y, 1, dsa=False, **opts)
    b = dm(x, y, 1, dsa=False, robust=feat, **opts)
    assert feat.calls == 2 * 4 and not torch.allclose(a.x, b.x)


def test_callback_and_history(digits):
    x, y = digits
    seen = []
    s = dm(x, y, 1, model_fn=small_net, steps=5, batch_real=8, dsa=False, generator=0, callback_every=2,
           callback=lambda step, x_syn, info: seen.append((step, tuple(x_syn.shape), info["loss"] is None)))
    assert [h[0] for h in s.history] == [0, 2, 4, 5]
    assert seen == [(0, (4, 1, 8, 8), True), (2, (4, 1, 8, 8), False), (4, (4, 1, 8, 8), False),
                    (5, (4, 1, 8, 8), False)]
    assert torch.equal(s.history[-1][1], s.x)
    assert s.info["hyperparameters"]["steps"] == 5 and s.info["time_per_step"] > 0


def test_default_models_for_images_and_vectors(digits):
    x, y = digits
    s = dc(x, y, 1, steps=1, batch_real=4, generator=0)  # default ConvNet sized for 8x8
    assert s.x.shape == (4, 1, 8, 8)
    v = x.flatten(1)
    for method in (dc, dm):
        s = method(v, y, 1, steps=1, batch_real=4, dsa=False, generator=0)
        assert s.x.shape == (4, 64)


def test_noise_initialisation_and_float64(digits):
    x, y = digits
    s = dc(x.double(), y, 1, model_fn=small_net, steps=1, batch_real=4, init="noise", generator=0)
    assert s.x.dtype == torch.float64
    assert not any(torch.equal(s.history[0][1][0], xi) for xi in x.double())


def test_bad_inputs(digits):
    x, y = digits
    opts = dict(model_fn=small_net, steps=1)
    with pytest.raises(ValueError, match="'ipc' parameter of dc"):
        dc(x, y, 10_000, **opts)
    with pytest.raises(ValueError, match="'ipc' parameter of dm"):
        dm(x, y, 0, **opts)
    with pytest.raises(ValueError, match="'metric' parameter of dc"):
        dc(x, y, 1, metric="l2", **opts)
    with pytest.raises(ValueError, match="'init' parameter of dsa"):
        dsa(x, y, 1, init="zeros", **opts)
    with pytest.raises(ValueError, match="'dsa_strategy' parameter of dm"):
        dm(x, y, 1, dsa_strategy="blur", **opts)
    with pytest.raises(ValueError, match="'steps' parameter of dc"):
        dc(x, y, 1, model_fn=small_net, steps=0)
    with pytest.raises(ValueError, match="'steps' parameter of dm"):
        dm(x, y, 1, model_fn=small_net, steps=0)
    with pytest.raises(ValueError, match="'x' parameter of dc"):  # a 28x28 network on 8x8 images
        dc(x, y, 1, model_fn=lambda generator=None: ConvNet(1, 4, im_size=28, width=8, generator=generator), steps=1)
    with pytest.raises(ValueError, match="'x' parameter of dm"):
        dm(torch.zeros(8, 3, 8, 8), torch.arange(8) % 4, 1, **opts)
    with pytest.raises(ValueError, match="'model_fn' parameter of dc"):  # 2 outputs for 4 classes
        dc(x, y, 1, model_fn=lambda generator=None: ConvNet(1, 2, im_size=8, width=8, generator=generator), steps=1)
    with pytest.raises(TypeError, match="'model_fn' parameter of dm"):
        dm(x, y, 1, model_fn="convnet", steps=1)
    with pytest.raises(TypeError, match="'model_fn' parameter of dm.*embed"):  # DM needs net.embed
        dm(x, y, 1, model_fn=lambda generator=None: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)),
           steps=1)
    with pytest.raises(TypeError, match="'model_fn' parameter of dc"):
        dc(x, y, 1, model_fn=lambda generator=None: "not a network", steps=1)
    with pytest.raises(ValueError, match="'lr_img' parameter of dm"):
        dm(x, y, 1, lr_img=0.0, **opts)
    with pytest.raises(ValueError, match="'batch_real' parameter of dc"):
        dc(x, y, 1, batch_real=0, **opts)
    with pytest.raises(ValueError, match="'outer_loop' parameter of dc"):
        dc(x, y, 1, outer_loop=0, **opts)
    with pytest.raises(TypeError, match="'robust' parameter of dc"):
        dc(x, y, 1, robust=FakeFeatureRobust(), **opts)
    with pytest.raises(TypeError, match="'robust' parameter of dm"):
        dm(x, y, 1, robust=FakeGradientRobust(), **opts)
    with pytest.raises(TypeError, match="'callback' parameter of dm"):
        dm(x, y, 1, callback=3, **opts)
    with pytest.raises(ValueError, match="'dsa' parameter of dm"):
        dm(x.flatten(1), y, 1, steps=1, dsa=True)
    with pytest.raises(ValueError, match="'vectorize' parameter of dc"):
        dc(x, y, 1, robust=FakeGradientRobust(), vectorize=True, **opts)
    with pytest.raises(ValueError, match="'dsa' parameter of dsa"):
        dsa(x, y, 1, dsa=False, **opts)
    with pytest.raises(TypeError, match="'y' parameter of dc"):
        dc(x, y.float(), 1, **opts)
    with pytest.raises(ValueError, match="'method' parameter of distill"):
        distill("dcx", x, y, 1)


def test_dc_accepts_any_module_without_embed(digits):
    x, y = digits

    def linear(generator=None):
        torch.manual_seed(0)  # nn.Linear initialises from the global RNG; fix it for the test
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))

    a = dc(x, y, 1, model_fn=linear, steps=2, batch_real=8, generator=0)
    b = dc(x, y, 1, model_fn=linear, steps=2, batch_real=8, generator=0)
    assert a.x.shape == (4, 1, 8, 8) and torch.equal(a.x, b.x)
