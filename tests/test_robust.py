"""distillkit.robust: CVaR against independent oracles, subgroups on hand-made cases, and the
robust matching target (its gradient, the as-released mode, determinism, every bad input)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn
from torch.nn import functional as F

from distillkit.models import MLP
from distillkit.robust import (
    GroupCVaRTarget,
    cvar,
    cvar_weights,
    group_accuracy,
    group_cvar_risk,
    group_cvar_weights,
    kmeans_groups,
    pixel_clusters,
    released_cvar,
    released_group_risk,
    voronoi_groups,
)
from distillkit.robust.groups import _lloyd


# ----------------------------------------------------------------------------- oracles
def brute_cvar(losses, alpha):
    """Sort-based: the worst floor(m) losses in full and the next with weight m - floor(m)."""
    s = sorted(losses, reverse=True)
    m = (1 - alpha) * len(s)
    if abs(m - round(m)) < 1e-9:
        m = round(m)
    full = math.floor(m)
    total = sum(s[:full]) + ((m - full) * s[full] if full < len(s) else 0.0)
    return total / m


def ru_min_over_losses(losses, alpha):
    """min_tau tau + mean((l - tau)_+) / (1 - alpha); piecewise linear, so a loss attains it."""
    l = np.asarray(losses)
    return min(t + np.maximum(l - t, 0).mean() / (1 - alpha) for t in l)


def ru_linprog(losses, alpha):
    """The same minimisation as a linear programme: variables (tau, u_1..u_n), u_i >= l_i - tau, u >= 0."""
    l = np.asarray(losses, dtype=float)
    n = l.size
    c = np.concatenate([[1.0], np.full(n, 1.0 / ((1 - alpha) * n))])
    a_ub = np.hstack([-np.ones((n, 1)), -np.eye(n)])  # -tau - u_i <= -l_i
    bounds = [(None, None)] + [(0, None)] * n
    return linprog(c, A_ub=a_ub, b_ub=-l, bounds=bounds, method="highs").fun


# ----------------------------------------------------------------------------- cvar
@pytest.mark.parametrize("n", [1, 2, 7, 10, 31])
@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.75, 0.8, 0.9, 0.97])
def test_cvar_matches_sort_and_rockafellar_uryasev(n, alpha):
    losses = torch.rand(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 5
    got = float(cvar(losses, alpha))
    vals = losses.tolist()
    assert got == pytest.approx(brute_cvar(vals, alpha), abs=1e-10)
    assert got == pytest.approx(ru_min_over_losses(vals, alpha), abs=1e-10)
    assert got == pytest.approx(ru_linprog(vals, alpha), abs=1e-7)


def test_cvar_hand_worked_values():
    x = torch.arange(1.0, 11.0)
    assert float(cvar(x, 0.8)) == pytest.approx(9.5)  # worst 2 of 10
    assert float(cvar(x, 0.75)) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)  # fractional tail
    assert float(cvar(x, 0.95)) == pytest.approx(10.0)  # tail of half an example: the max
    assert float(cvar(x, 1e-9)) == pytest.approx(5.5, abs=1e-6)  # alpha -> 0: the mean


def test_cvar_gradient_is_the_tail_weights():
    losses = torch.tensor([0.3, 2.0, 1.1, 0.7, 1.6], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(cvar(losses, 0.5), losses)  # tail 2.5: 2.0, 1.6 and half of 1.1
    expected = torch.tensor([0, 1, 0.5, 0, 1], dtype=torch.float64) / 2.5
    assert torch.allclose(grad, expected)
    assert torch.allclose(cvar_weights(losses, 0.5), expected)
    assert torch.autograd.gradcheck(lambda l: cvar(l, 0.5), (losses,))


def test_cvar_ties_share_the_weight():
    w = cvar_weights(torch.tensor([2.0, 5.0, 2.0, 2.0]), 0.5)  # tail 2: 5 and one of three 2s
    assert torch.allclose(w, torch.tensor([1 / 6, 1 / 2, 1 / 6, 1 / 6]))


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, 0.0, 1.0, float("nan")])
def test_cvar_bad_alpha(alpha):
    with pytest.raises(ValueError, match="'alpha' parameter of cvar"):
        cvar(torch.ones(3), alpha)
    with pytest.raises(ValueError, match="'alpha' parameter of GroupCVaRTarget"):
        GroupCVaRTarget(alpha)
    with pytest.raises(ValueError, match="'alpha' parameter of group_cvar_risk"):
        group_cvar_risk(torch.ones(3), torch.zeros(3, dtype=torch.long), alpha)


def test_cvar_bad_losses():
    with pytest.raises(TypeError, match="'alpha'"):
        cvar(torch.ones(3), "0.5")
    with pytest.raises(ValueError, match="'losses' parameter of cvar must be a non-empty"):
        cvar(torch.ones(0), 0.5)
    with pytest.raises(ValueError, match="'losses' parameter of cvar must be a 1-dimensional"):
        cvar(torch.ones(2, 2), 0.5)
    with pytest.raises(ValueError, match="'losses'.*finite"):
        cvar(torch.tensor([1.0, float("nan")]), 0.5)
    with pytest.raises(TypeError, match="'losses'"):
        cvar(torch.ones(3, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="'losses'"):
        cvar([1.0, 2.0], 0.5)


# ----------------------------------------------------------------------------- group risk
def test_group_risk_is_mean_plus_max_of_group_cvars():
    g = torch.Generator().manual_seed(3)
    losses = torch.rand(40, generator=g, dtype=torch.float64)
    groups = torch.randint(0, 5, (40,), generator=g) * 3  # ids need not be contiguous
    per_group = [brute_cvar(losses[groups == j].tolist(), 0.7) for j in groups.unique().tolist()]
    assert float(group_cvar_risk(losses, groups, 0.7)) == pytest.approx(np.mean(per_group) + max(per_group))
    assert float(group_cvar_risk(losses, groups, 0.7, use_max=False)) == pytest.approx(np.mean(per_group))
    q = group_cvar_weights(losses, groups, 0.7)
    assert float(q.sum()) == pytest.approx(2.0) and bool((q >= 0).all())


def test_group_risk_bad_input():
    with pytest.raises(ValueError, match="'groups' parameter of group_cvar_risk must be a tensor with one group id"):
        group_cvar_risk(torch.ones(3), torch.zeros(2, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="'groups'"):
        group_cvar_risk(torch.ones(3), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="'use_max'"):
        group_cvar_weights(torch.ones(3), torch.zeros(3, dtype=torch.long), 0.5, use_max=1)


def test_released_cvar_is_a_lower_tail_average():
    assert released_cvar(np.arange(1.0, 11.0), 0.8) == pytest.approx(5.625)  # ANCHORS 1.3
    assert float(cvar(torch.arange(1.0, 11.0), 0.8)) == pytest.approx(9.5)
    # padded rows: group 0 = [1, 2], group 1 = [4] padded to [4, 0]; alpha 0.5 -> k = 1
    # row 0 -> 1 / 0.5 = 2; row 1 sorted [0, 4]: no non-zero in the k smallest -> 0; mean of non-zero = 2, max = 2
    assert released_group_risk([1.0, 2.0, 4.0], [0, 0, 1], 0.5) == pytest.approx(4.0)
    assert released_group_risk([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1], 0.5, n_groups=3) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="'groups' parameter of released_group_risk"):
        released_group_risk([1.0, 2.0], [0], 0.5)
    with pytest.raises(ValueError, match="'n_groups' parameter of released_group_risk must be an int in \\[2, inf\\]"):
        released_group_risk([1.0, 2.0], [0, 1], 0.5, n_groups=1)
    with pytest.raises(ValueError, match="'alpha' parameter of released_cvar"):
        released_cvar([1.0], 0.0)


# ----------------------------------------------------------------------------- groups
def test_voronoi_groups_hand_made():
    f_syn = torch.tensor([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0]])
    y_syn = torch.tensor([0, 0, 1])
    f_real = torch.tensor([[0.9, 0.0], [3.0, 0.0], [1.2, 0.5], [-1.0, 0.0]])
    y_real = torch.tensor([0, 0, 1, 0])
    # per class: class-0 points choose among synthetic 0 and 1 only
    assert voronoi_groups(f_real, f_syn, y_real, y_syn).tolist() == [0, 1, 2, 0]
    # pooled (the released code): (0.9, 0) is now nearest to the class-1 point (1, 0)
    assert voronoi_groups(f_real, f_syn, y_real, y_syn, pool_across_classes=True).tolist() == [2, 1, 2, 0]
    assert voronoi_groups(f_real, f_syn).tolist() == [2, 1, 2, 0]
    # ties go to the lower index
    assert voronoi_groups(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 0.0]])).tolist() == [0]


def test_voronoi_groups_bad_input():
    f = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="'y_syn' parameter of voronoi_groups must be a synthetic point for every"):
        voronoi_groups(f, f[:1], torch.tensor([0, 1, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="'f_syn' parameter of voronoi_groups must be a tensor with 2 columns"):
        voronoi_groups(f, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="'y_real'.*one entry per row"):
        voronoi_groups(f, f, torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="'y_syn'"):
        voronoi_groups(f, f, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="'f_real'"):
        voronoi_groups(torch.zeros(0, 2), f)
    with pytest.raises(TypeError, match="'pool_across_classes'"):
        voronoi_groups(f, f, pool_across_classes="yes")


def test_lloyd_matches_scikit_learn():
    from sklearn.cluster import KMeans

    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(60, 3, generator=g, dtype=torch.float64) + c for c in (0.0, 2.0, 5.0)])
    init = x[torch.randperm(x.shape[0], generator=g)[:4]]
    labels, centers = _lloyd(x, init.clone(), 300)
    km = KMeans(4, init=init.numpy(), n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(x.numpy())
    assert labels.tolist() == km.labels_.tolist()
    assert np.allclose(centers.numpy(), km.cluster_centers_, atol=1e-10)


def test_kmeans_groups_recovers_separated_blobs_and_is_deterministic():
    g = torch.Generator().manual_seed(1)
    truth = torch.arange(3).repeat_interleave(20)
    x = torch.randn(60, 2, generator=g) * 0.1 + torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[truth]
    labels, centers = kmeans_groups(x, 3, generator=0)
    # same partition as the truth, up to a relabelling
    assert len({(int(a), int(b)) for a, b in zip(labels, truth)}) == 3
    assert centers.shape == (3, 2)
    again, _ = kmeans_groups(x, 3, generator=0)
    assert torch.equal(labels, again)
    other = [kmeans_groups(x, 5, generator=s)[0] for s in range(4)]
    assert all(torch.bincount(o, minlength=5).min() > 0 for o in other)  # no empty cluster


def test_kmeans_groups_bad_input():
    with pytest.raises(ValueError, match="'k' parameter of kmeans_groups must be an int in \\[1, 3\\]"):
        kmeans_groups(torch.zeros(3, 2), 4, generator=0)
    with pytest.raises(ValueError, match="'k' parameter of kmeans_groups must be at most the number of distinct rows"):
        kmeans_groups(torch.tensor([[0.0], [0.0], [1.0]]), 3, generator=0)
    with pytest.raises(ValueError, match="'n_iter'"):
        kmeans_groups(torch.zeros(3, 2), 1, n_iter=0)
    with pytest.raises(ValueError, match="'features'"):
        kmeans_groups(torch.zeros(3), 1)


def test_group_accuracy_and_pixel_clusters():
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model.bias.zero_()
    x = torch.tensor([[-1.0], [1.0], [2.0], [-2.0], [3.0]])
    y = torch.tensor([0, 1, 1, 1, 0])
    result = group_accuracy(model, x, y, torch.tensor([5, 5, 7, 7, 9]))
    assert result.average == pytest.approx(0.6)
    assert result.groups == (5, 7, 9) and result.counts == (2, 2, 1)
    assert result.accuracies == (1.0, 0.5, 0.0) and result.worst == 0.0 and result.worst_group == 9
    with pytest.raises(ValueError, match="'groups' parameter of group_accuracy"):
        group_accuracy(model, x, y, torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="'model'"):
        group_accuracy(None, x, y, torch.zeros(5, dtype=torch.long))
    images = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pixel_clusters(images, 3, generator=0), pixel_clusters(images, 3, generator=0))


# ----------------------------------------------------------------------------- the target
def _net(seed=0):
    return MLP(2, 2, hidden=(16,), generator=seed).double()


def _grads(net, loss):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(net.parameters()))])


def _two_group_batch():
    """Two tight clusters of class 0: near (0, 0) and near (5, 5); synthetic points on each."""
    g = torch.Generator().manual_seed(0)
    x_real = torch.cat([torch.randn(12, 2, generator=g) * 0.3, torch.randn(4, 2, generator=g) * 0.3 + 5]).double()
    y_real = torch.zeros(16, dtype=torch.long)
    x_syn = torch.tensor([[0.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
    return x_real, y_real, x_syn, torch.zeros(2, dtype=torch.long)


def identity_embed(net, x):
    return x


def test_robust_gradient_differs_from_mean_gradient_when_groups_differ_in_loss():
    net = _net()
    x_real, y_real, x_syn, y_syn = _two_group_batch()
    target = GroupCVaRTarget(0.5, embed=identity_embed)
    assert target.groups(net, x_real, y_real, x_syn, y_syn).tolist() == [0] * 12 + [1] * 4
    losses = F.cross_entropy(net(x_real), y_real, reduction="none").detach()
    assert abs(float(losses[:12].mean() - losses[12:].mean())) > 1e-3  # the groups differ in loss
    g_rob = _grads(net, target.gradient_loss(net, x_real, y_real, x_syn, y_syn))
    g_mean = _grads(net, F.cross_entropy(net(x_real), y_real))
    assert g_rob.norm() > 0
    cosine = float(g_rob @ g_mean / (g_rob.norm() * g_mean.norm()))
    assert cosine < 0.99
    # oracle: the q-weighted sum of per-example gradients
    q = group_cvar_weights(losses, torch.tensor([0] * 12 + [1] * 4), 0.5)
    g_oracle = _grads(net, (q * F.cross_entropy(net(x_real), y_real, reduction="none")).sum())
    assert torch.allclose(g_rob, g_oracle, atol=1e-12)


@pytest.mark.parametrize("use_max", [False, True])
def test_robust_gradient_equals_mean_gradient_when_every_loss_is_equal(use_max):
    net = _net()
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.zero_()  # every logit 0: every loss is log 2, but gradients differ
    x_real, y_real, x_syn, y_syn = _two_group_batch()
    x_real, y_real = x_real[:8].clone(), torch.tensor([0, 1] * 4)
    x_real[4:] += 5  # two groups of 4, identical loss distributions
    target = GroupCVaRTarget(0.75, use_max=use_max, embed=identity_embed)
    y_syn = torch.tensor([0, 1])
    g_rob = _grads(net, target.gradient_loss(net, x_real, y_real, x_syn, y_syn))
    g_mean = _grads(net, F.cross_entropy(net(x_real), y_real))
    assert g_mean.norm() > 0
    assert torch.allclose(g_rob, (2.0 if use_max else 1.0) * g_mean, atol=1e-12)


def test_as_released_gradient_is_exactly_the_mean_gradient():
    net = MLP(2, 3, hidden=(16,), generator=1)
    g = torch.Generator().manual_seed(2)
    x_real, y_real = torch.randn(30, 2, generator=g) * 3, torch.randint(0, 3, (30,), generator=g)
    x_syn, y_syn = torch.randn(6, 2, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])
    released = GroupCVaRTarget(0.8, mode="as_released", pool_across_classes=True)
    loss = released.gradient_loss(net, x_real, y_real, x_syn, y_syn)
    g_rel = _grads(net, loss)
    g_mean = _grads(net, F.cross_entropy(net(x_real), y_real))
    assert float((g_rel - g_mean).abs().max()) == 0.0
    # the value does carry the released risk
    groups = released.groups(net, x_real, y_real, x_syn, y_syn)
    losses = F.cross_entropy(net(x_real), y_real, reduction="none").detach().numpy()
    expected = released_group_risk(losses, groups.numpy(), 0.8) + float(F.cross_entropy(net(x_real), y_real).detach())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    g_rob = _grads(net, GroupCVaRTarget(0.8, pool_across_classes=True).gradient_loss(net, x_real, y_real, x_syn, y_syn))
    assert float((g_rob / 2 - g_mean).abs().max()) > 1e-3  # the differentiable risk changes it


def test_kmeans_grouping_is_deterministic_and_validated():
    net = MLP(2, 2, hidden=(8,), generator=0)
    g = torch.Generator().manual_seed(0)
    x_real, y_real = torch.randn(20, 2, generator=g), torch.tensor([0, 1] * 10)
    x_syn, y_syn = torch.randn(4, 2, generator=g), torch.tensor([0, 0, 1, 1])
    a = GroupCVaRTarget(grouping="kmeans", generator=0).gradient_loss(net, x_real, y_real, x_syn, y_syn)
    b = GroupCVaRTarget(grouping="kmeans", generator=0).gradient_loss(net, x_real, y_real, x_syn, y_syn)
    assert float(a.detach()) == float(b.detach())
    groups = GroupCVaRTarget(grouping="kmeans", generator=0).groups(net, x_real, y_real, x_syn, y_syn)
    assert groups.unique().tolist() == [0, 1, 2, 3]
    assert set(groups[y_real == 0].tolist()) == {0, 1}  # two clusters per class, per class
    with pytest.raises(ValueError, match="'x_syn' parameter of GroupCVaRTarget.gradient_loss must be between 1 and 2"):
        GroupCVaRTarget(grouping="kmeans").gradient_loss(net, x_real[:4], y_real[:4], x_syn.repeat(2, 1),
                                                         y_syn.repeat(2))


def test_target_bad_input():
    net = MLP(2, 2, hidden=(8,), generator=0)
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    t = GroupCVaRTarget()
    with pytest.raises(ValueError, match="'x_syn' parameter of GroupCVaRTarget.gradient_loss must be a tensor of"):
        t.gradient_loss(net, x, y, torch.zeros(2, 3), y[:2])
    with pytest.raises(ValueError, match="'y_real' parameter of GroupCVaRTarget.gradient_loss"):
        t.gradient_loss(net, x, y[:3], x[:2], y[:2])
    with pytest.raises(ValueError, match="'y_syn' parameter of GroupCVaRTarget.gradient_loss"):
        t.gradient_loss(net, x, y, x[:2], y[:1])
    with pytest.raises(TypeError, match="'net'"):
        t.gradient_loss(None, x, y, x[:2], y[:2])
    with pytest.raises(TypeError, match="'net' parameter of GroupCVaRTarget.gradient_loss must be a network with"):
        t.gradient_loss(nn.Linear(2, 2), x, y, x[:2], y[:2])
    assert GroupCVaRTarget(embed=identity_embed).gradient_loss(nn.Linear(2, 2), x, y, x[:2], y[:2]).dim() == 0
    with pytest.raises(ValueError, match="'grouping'"):
        GroupCVaRTarget(grouping="dbscan")
    with pytest.raises(ValueError, match="'mode'"):
        GroupCVaRTarget(mode="released")
    with pytest.raises(TypeError, match="'use_max'"):
        GroupCVaRTarget(use_max=1)
    with pytest.raises(TypeError, match="'embed'"):
        GroupCVaRTarget(embed="embed")
    with pytest.raises(ValueError, match="'f_syn' parameter of GroupCVaRTarget.feature_target"):
        t.feature_target(torch.zeros(3, 2), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="'f_real'"):
        t.feature_target(torch.zeros(0, 2), torch.zeros(2, 2))


def test_feature_target_hand_worked():
    f_syn = torch.tensor([[0.0, 0.0], [10.0, 0.0]], requires_grad=True)
    f_real = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 3.0], [10.0, 1.0], [10.0, -1.0]])
    # distances: group 0 -> [1, 1, 3], tail 1.5: 3 gets 2/3, the tied 1s share 1/3; group 1 -> [1, 1]
    target = GroupCVaRTarget(0.5, use_max=False).feature_target(f_real, f_syn)
    assert torch.allclose(target, torch.tensor([5.0, 1.0]))
    assert not target.requires_grad  # no gradient through the synthetic side
    assert torch.allclose(GroupCVaRTarget(mode="as_released").feature_target(f_real, f_syn), f_real.mean(0))
    # "group": w_j proportional to CVaR_j / J: group 0 CVaR (3 + 0.5) / 1.5 = 7/3, group 1 CVaR 1
    w0 = (7 / 3) / (7 / 3 + 1)
    expected = w0 * f_real[:3].mean(0) + (1 - w0) * f_real[3:].mean(0)
    grouped = GroupCVaRTarget(0.5, use_max=False, feature_weighting="group").feature_target(f_real, f_syn)
    assert torch.allclose(grouped, expected)


def test_feature_target_is_the_mean_of_group_means_when_coverage_is_perfect():
    f_syn = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    f_real = torch.cat([f_syn[:1].repeat(3, 1), f_syn[1:].repeat(1, 1)])  # every distance 0, sizes 3 and 1
    for weighting in ("tail", "group"):
        got = GroupCVaRTarget(feature_weighting=weighting).feature_target(f_real, f_syn)
        assert torch.allclose(got, f_syn.mean(0)), weighting
