"""Decision-boundary coresets (distillkit.coresets.deepfool, .cal): DeepFool against the closed-form
distance of linear classifiers and a brute-force boundary of a 2-D MLP; CAL's chunked kNN
against brute force and its divergence against scipy's relative entropy."""

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from torch import nn

from distillkit.coresets import METHODS, class_budgets, select
from distillkit.coresets.cal import cal, cal_scores, knn
from distillkit.coresets.deepfool import deepfool, deepfool_perturbation, deepfool_scores
from distillkit.data import make_moons
from distillkit.models import MLP
from distillkit.train import train_model

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
PUSH = 1e-4  # DeepFool's step adds 1e-4 to |f'_l| so that the point crosses the boundary


def linear(d, n_classes, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, n_classes).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n_classes, d, generator=g, dtype=dtype))
        lin.bias.copy_(torch.randn(n_classes, generator=g, dtype=dtype))
    return lin


def closed_form(lin, x):
    """Distance from x to the boundary of its decision region (a convex polyhedron) and the
    nearest facet's normal norm: min over k != p of |(w_k - w_p).x + b_k - b_p| / ||w_k - w_p||."""
    W, b = lin.weight.detach(), lin.bias.detach()
    p = (x @ W.T + b).argmax(1)
    dw = W[None] - W[p][:, None]  # (n, C, d)
    num = ((x @ W.T + b) - (x @ W.T + b).gather(1, p[:, None])).abs()  # (n, C)
    den = dw.norm(dim=2)
    ratio = num / den
    ratio[torch.arange(len(x)), p] = torch.inf
    best = ratio.argmin(1)
    return ratio.min(1).values, den[torch.arange(len(x)), best]


@pytest.fixture(scope="module")
def moons_mlp():
    x, y = make_moons(200, noise=0.15, generator=0)
    model = MLP(2, 2, hidden=(32, 32), generator=0)
    train_model(model, x, y, epochs=150, lr=0.05, generator=0)
    return x, y, model


# ---------------------------------------------------------------- DeepFool, linear models


@pytest.mark.parametrize("device", DEVICES)
def test_deepfool_two_class_linear_equals_closed_form(device):
    lin = linear(6, 2, seed=0).to(device)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    w = (lin.weight[1] - lin.weight[0]).detach()
    b = (lin.bias[1] - lin.bias[0]).detach()
    exact = (x @ w + b).abs() / w.norm()  # |w.x + b| / ||w||
    res = deepfool_perturbation(lin, x, batch_size=16)
    scores = deepfool_scores(lin, x, batch_size=16)
    assert scores.device.type == device
    torch.testing.assert_close(scores, exact + PUSH / w.norm(), rtol=1e-9, atol=1e-9)
    assert (scores - exact).abs().max() <= PUSH / w.norm() * (1 + 1e-6)
    assert res.steps.tolist() == [1] * 50 and bool(res.converged.all())
    # the perturbation points along -sign(w.x+b) w: onto the boundary
    r = res.perturbation
    torch.testing.assert_close(x @ w + b + r @ w, torch.sign(-(x @ w + b)) * PUSH, rtol=0, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_deepfool_multiclass_linear_first_step_is_exact(device):
    lin = linear(5, 6, seed=2).to(device)
    x = 3 * torch.randn(80, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(device)
    exact, den = closed_form(lin, x)
    res = deepfool_perturbation(lin, x)
    assert res.steps.tolist() == [1] * 80
    torch.testing.assert_close(res.perturbation.norm(dim=1), exact + PUSH / den, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        before, after = lin(x).argmax(1), lin(x + 1.02 * res.perturbation).argmax(1)
    assert bool((before != after).all())


def test_deepfool_float32_input_float64_model_and_batch_size():
    lin = linear(4, 3, seed=4)  # float64 model
    x = torch.randn(33, 4, generator=torch.Generator().manual_seed(5))
    exact, den = closed_form(lin, x.double())
    for bs in (1, 7, 256):
        s = deepfool_scores(lin, x, batch_size=bs)
        assert s.dtype == torch.float32
        torch.testing.assert_close(s, (exact + PUSH / den).float(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- DeepFool, non-linear models


def test_deepfool_flips_mlp_and_matches_brute_force_boundary(moons_mlp):
    x, _, model = moons_mlp
    res = deepfool_perturbation(model, x)
    assert bool(res.converged.all())
    with torch.no_grad():
        before = model(x).argmax(1)
        after = model(x + 1.02 * res.perturbation).argmax(1)
    assert bool((before != after).all())
    # brute force: boundary points of a fine grid; DeepFool is close to the true distance
    g = torch.linspace(-2.5, 3.5, 601)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([X, Y], -1)
    with torch.no_grad():
        lab = model(grid.reshape(-1, 2)).argmax(1).reshape(X.shape)
    edges = torch.cat([((grid[:, 1:] + grid[:, :-1]) / 2)[lab[:, 1:] != lab[:, :-1]],
                       ((grid[1:] + grid[:-1]) / 2)[lab[1:] != lab[:-1]]])
    true = torch.cdist(x, edges).min(1).values
    ratio = res.perturbation.norm(dim=1) / true
    assert ratio.min() > 0.95  # cannot beat the true distance (up to the grid's resolution)
    assert ratio.median() < 1.2


def test_deepfool_restores_model_and_leaves_x_alone(moons_mlp):
    x, _, model = moons_mlp
    model = MLP(2, 2, hidden=(32, 32), generator=0)
    model.load_state_dict(moons_mlp[2].state_dict())
    model.body[1].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    model.train()
    x0 = x.clone()
    with torch.no_grad():  # works even under no_grad
        s = deepfool_scores(model, x)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    torch.testing.assert_close(s, deepfool_scores(model, x))
    assert not model.training


def test_deepfool_zero_gradient_scores_inf_and_is_ranked_last():
    # h = relu(x); logits = (h - 1, 1 - h): boundary at x = 1; for x < 0 the logits are constant
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0), model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0], [-1.0]])), model[2].bias.copy_(torch.tensor([-1.0, 1.0]))
    x = torch.tensor([[3.0], [-2.0], [0.5], [1.5]])
    s = deepfool_scores(model, x)
    assert torch.isinf(s[1])
    torch.testing.assert_close(s[[0, 2, 3]], torch.tensor([2.0, 0.5, 0.5]) + PUSH / 2)
    sel = deepfool(x, torch.zeros(4, dtype=torch.int64), 4, model=model)
    assert sel.indices.tolist() == [2, 3, 0, 1]  # ties by index, "no boundary" last
    assert sel.info["unconverged"] == 1 and sel.info["proxy"] is False


def test_deepfool_registered_selection_per_class_and_global(moons_mlp):
    x, y, model = moons_mlp
    scores = deepfool_scores(model, x)
    sel = deepfool(x, y, 21, model=model)
    assert METHODS["deepfool"] is deepfool and sel.method == "deepfool"
    torch.testing.assert_close(sel.scores, scores)
    for c, k in class_budgets(y, 21).items():
        members = (y == c).nonzero().squeeze(1)
        expected = members[torch.sort(scores[members], stable=True).indices[:k]]
        assert sorted(i for i in sel.indices.tolist() if y[i] == c) == sorted(expected.tolist())
    glob = select("deepfool", x, y, 15, per_class=False, model=model)
    assert glob.indices.tolist() == torch.sort(scores, stable=True).indices[:15].tolist()
    assert torch.equal(sel.weights, torch.ones(21))


def test_deepfool_proxy_is_deterministic():
    x, y = make_moons(120, noise=0.2, generator=1)
    a = deepfool(x, y, 10, generator=3, proxy_epochs=5)
    b = deepfool(x, y, 10, generator=3, proxy_epochs=5)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.scores, b.scores) and a.info["proxy"]
    f = deepfool(x, y, 10, features=x.double(), generator=3, proxy_epochs=5)  # proxy on the feature space
    assert f.scores.dtype == torch.float64 and len(f) == 10


def test_deepfool_errors(moons_mlp):
    x, y, model = moons_mlp
    with pytest.raises(TypeError, match="'model' parameter of deepfool_scores"):
        deepfool_scores("net", x)
    with pytest.raises(TypeError, match="'x' parameter of deepfool_scores"):
        deepfool_scores(model, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="'x' parameter of deepfool_perturbation must be finite"):
        deepfool_perturbation(model, torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="'max_iter' parameter of deepfool_scores"):
        deepfool_scores(model, x, max_iter=0)
    with pytest.raises(ValueError, match="'overshoot' parameter of deepfool_scores"):
        deepfool_scores(model, x, overshoot=-0.1)
    with pytest.raises(ValueError, match="'batch_size' parameter of deepfool_perturbation"):
        deepfool_perturbation(model, x, batch_size=0)
    with pytest.raises(TypeError, match="'progress' parameter of deepfool_scores"):
        deepfool_scores(model, x, progress="yes")
    with pytest.raises(ValueError, match="'model' parameter of deepfool_scores must be a classifier"):
        deepfool_scores(nn.Linear(2, 1), x)
    with pytest.raises(ValueError, match="'model' parameter of deepfool_scores must be on the device of x"):
        deepfool_scores(nn.Linear(2, 2, device="meta"), x)
    with pytest.raises(ValueError, match="'features' parameter of deepfool must be None when model is given"):
        deepfool(x, y, 4, model=model, features=x)
    with pytest.raises(ValueError, match="'budget' parameter of deepfool"):
        deepfool(x, y, 0, model=model)
    with pytest.raises(ValueError, match="'budget' parameter of deepfool"):
        deepfool(x[:4], torch.tensor([0, 0, 0, 1]), 4, model=model)  # class 1 cannot supply 2
    with pytest.raises(ValueError, match="'proxy_epochs' parameter of deepfool"):
        deepfool(x, y, 4, proxy_epochs=0)
    with pytest.raises(TypeError, match="'generator' parameter of deepfool"):
        deepfool(x, y, 4, model=model, generator="seed")
    with pytest.raises(TypeError, match="'progress' parameter of deepfool"):
        deepfool(x, y, 4, progress=None)
    with pytest.raises(ValueError, match="'y' parameter of deepfool"):
        deepfool(x, y[:-1], 4, model=model)


# ---------------------------------------------------------------- CAL


def brute_knn(f, k):
    d = torch.cdist(f, f)
    d.fill_diagonal_(torch.inf)
    return d.topk(k, dim=1, largest=False)


@pytest.mark.parametrize("device", DEVICES)
def test_knn_equals_brute_force_for_every_chunk_size(device):
    f = torch.randn(90, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)
    bd, bi = brute_knn(f, 7)
    for chunk in (2, 5, 64, 90, 1000):
        d, i = knn(f, 7, chunk_size=chunk)
        assert torch.equal(i, bi), chunk
        torch.testing.assert_close(d, bd)
    assert not bool((i == torch.arange(90, device=device)[:, None]).any())  # never its own neighbour


def test_knn_never_builds_an_n_by_n_tensor():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    Largest.numel = max(Largest.numel, t.numel())
            return out

    f = torch.randn(400, 3, generator=torch.Generator().manual_seed(0))
    with Largest():
        _, i = knn(f, 4, chunk_size=32)
    assert Largest.numel <= 400 * 4 * 2  # the (n, k) outputs; blocks are 32 x 32
    assert torch.equal(i, brute_knn(f, 4)[1])


def test_knn_duplicates_are_neighbours_and_ties_go_to_smaller_index():
    f = torch.tensor([[0.0], [0.0], [2.0], [4.0], [2.0]])
    for chunk in (1, 2, 5):
        d, i = knn(f, 2, chunk_size=chunk)
        assert i.tolist() == [[1, 2], [0, 2], [4, 0], [2, 4], [2, 0]], chunk
        assert d[:, 0].tolist() == [0.0, 0.0, 0.0, 2.0, 0.0]


def kl_oracle(probs, nb, eps, direction):
    p = np.clip(probs.numpy().astype(np.float64), eps, 1.0)
    out = []
    for i, row in enumerate(nb.tolist()):
        if direction == "neighbour||point":
            out.append(np.mean([rel_entr(p[j], p[i]).sum() for j in row]))
        else:
            out.append(np.mean([rel_entr(p[i], p[j]).sum() for j in row]))
    return torch.tensor(out)


@pytest.mark.parametrize("direction", ["neighbour||point", "point||neighbour"])
def test_cal_scores_equal_scipy_relative_entropy(direction):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(60, 3, generator=g, dtype=torch.float64)
    probs = torch.softmax(3 * torch.randn(60, 4, generator=g, dtype=torch.float64), 1)
    probs[0] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # zeros: eps clipping matters
    _, nb = brute_knn(feats, 5)
    for chunk in (4, 1024):
        s = cal_scores(probs, feats, k=5, kl_direction=direction, eps=1e-6, chunk_size=chunk)
        torch.testing.assert_close(s, kl_oracle(probs, nb, 1e-6, direction).to(s))
    assert torch.isfinite(s).all()


def test_cal_direction_matters_and_default_is_the_papers():
    feats = torch.tensor([[0.0], [1.0]])
    probs = torch.tensor([[0.5, 0.5], [0.99, 0.01]])
    a = cal_scores(probs, feats, k=1)
    b = cal_scores(probs, feats, k=1, kl_direction="point||neighbour")
    kl_1_0 = float(rel_entr(probs[1].numpy(), probs[0].numpy()).sum())  # KL(p_1 || p_0)
    assert a[0].item() == pytest.approx(kl_1_0, rel=1e-5)  # point 0 scored by KL(neighbour || point)
    assert b[1].item() == pytest.approx(kl_1_0, rel=1e-5)
    assert abs(a[0].item() - b[0].item()) > 0.1


def test_cal_hand_made_disagreeing_point_is_kept_first():
    # two tight clusters predicted confidently; point 5 sits inside cluster A but is predicted as B
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.05, 0.0], [0.05, 0.05],
                      [5.0, 5.0], [5.1, 5.0], [5.0, 5.1], [5.1, 5.1]])
    probs = torch.tensor([[0.95, 0.05]] * 5 + [[0.1, 0.9]] + [[0.05, 0.95]] * 4)
    y = torch.tensor([0] * 6 + [1] * 4)
    s = cal_scores(probs, x, k=3)
    assert s.argmax().item() == 5
    sel = cal(x, y, 1, probs=probs, k=3, per_class=False)
    assert sel.indices.tolist() == [5] and sel.method == "cal"
    torch.testing.assert_close(sel.scores, s)
    # per class: the highest score of each class, in the order of the global ranking
    per = cal(x, y, 2, probs=probs, k=3)
    ranked = torch.sort(s, descending=True, stable=True).indices.tolist()
    best = {c: max((i for i in range(10) if y[i] == c), key=lambda i: (s[i].item(), -i)) for c in (0, 1)}
    assert per.indices.tolist() == sorted(best.values(), key=ranked.index)


def test_cal_uses_model_probabilities_and_embedding(moons_mlp):
    x, y, model = moons_mlp
    model.train()
    sel = cal(x, y, 10, model=model, k=5)
    assert model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
        feats = model.embed(x)
    torch.testing.assert_close(sel.scores, cal_scores(probs, feats, k=5))
    flat = cal(x, y, 10, probs=probs, k=5)  # no model: features are the flattened inputs
    torch.testing.assert_close(flat.scores, cal_scores(probs, x, k=5))


def test_cal_proxy_is_deterministic():
    x, y = make_moons(100, noise=0.2, generator=2)
    a = cal(x, y, 12, generator=0, proxy_epochs=5)
    b = select("cal", x, y, 12, generator=0, proxy_epochs=5)
    assert torch.equal(a.indices, b.indices) and a.info["proxy"] and len(set(a.indices.tolist())) == 12


def test_cal_errors():
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    probs = torch.full((12, 3), 1 / 3)
    y = torch.arange(12) % 2
    with pytest.raises(ValueError, match="'probs' parameter of cal_scores must be rows that sum to 1"):
        cal_scores(probs * 2, x)
    with pytest.raises(ValueError, match="'probs' parameter of cal_scores must be non-negative probabilities"):
        cal_scores(probs - torch.tensor([0.5, -0.25, -0.25]), x)
    with pytest.raises(TypeError, match="'probs' parameter of cal_scores"):
        cal_scores(torch.ones(12, 3, dtype=torch.int64), x)
    with pytest.raises(ValueError, match="'features' parameter of cal_scores"):
        cal_scores(probs, x[:9])
    with pytest.raises(ValueError, match="'features' parameter of cal_scores must be finite"):
        cal_scores(probs, x.clone().index_fill_(0, torch.tensor([0]), float("nan")))
    with pytest.raises(ValueError, match="'k' parameter of cal_scores must be an int in \\[1, 11\\]"):
        cal_scores(probs, x, k=12)
    with pytest.raises(ValueError, match="'kl_direction' parameter of cal_scores"):
        cal_scores(probs, x, kl_direction="symmetric")
    with pytest.raises(ValueError, match="'eps' parameter of cal_scores"):
        cal_scores(probs, x, eps=0.0)
    with pytest.raises(ValueError, match="'chunk_size' parameter of cal_scores"):
        cal_scores(probs, x, chunk_size=0)
    with pytest.raises(TypeError, match="'progress' parameter of cal_scores"):
        cal_scores(probs, x, progress="no")
    with pytest.raises(ValueError, match="'k' parameter of knn"):
        knn(x, 0)
    with pytest.raises(ValueError, match="'features' parameter of knn"):
        knn(x[0], 1)
    with pytest.raises(ValueError, match="'chunk_size' parameter of knn"):
        knn(x, 1, chunk_size=0)
    with pytest.raises(ValueError, match="'probs' parameter of cal must be a tensor with one row per example"):
        cal(x, y, 2, probs=probs[:5])
    with pytest.raises(ValueError, match="'features' parameter of cal"):
        cal(x, y, 2, probs=probs, features=x[:4])
    with pytest.raises(ValueError, match="'budget' parameter of cal"):
        cal(x, y, 13, probs=probs)
    with pytest.raises(TypeError, match="'progress' parameter of cal"):
        cal(x, y, 2, probs=probs, progress=1)
    with pytest.raises(TypeError, match="'model' parameter of cal"):
        cal(x, y, 2, model="net")
