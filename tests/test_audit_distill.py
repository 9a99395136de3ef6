"""Audit of the distillation and robust packages (issue 14).

1. A sweep of every public function of ``distillkit.distill`` and ``distillkit.robust`` with
   bad input (meta-device tensors, 0-D / 1-D ``x``, float16, labels the network cannot output
   or absurdly large, non-callable ``callback`` / ``augment``, unchecked ``progress``,
   degenerate values): each must raise TypeError or ValueError in the project's one form,
   naming the public function and the parameter.
2. Regression tests of the audit's defects: DM's per-class step with DSA, reproducibility of
   the k-means robust target, non-finite results, ``init_synthetic`` with a too large ipc,
   ``released_cvar`` with NaN, ``median_bandwidth`` on degenerate data, the expert buffer's
   manifest checksum, damaged buffer files and overwriting.
"""


import numpy as np
import pytest
import torch
from torch import nn

from distillkit.distill import (
    ClassSampler,
    ExpertBuffer,
    apply_aug,
    check_ipc,
    dd_train,
    default_loops,
    distill,
    distribution_matching_loss,
    dm,
    dsa_augment,
    empirical_ntk,
    expert_buffer_size,
    gaussian_kernel,
    gradient_matching_distance,
    init_synthetic,
    kernel_ridge,
    load_expert_trajectories,
    make_kernel,
    median_bandwidth,
    ntk_features,
    sample_aug_params,
    siamese_augment,
    step_batches,
    train_expert_trajectories,
    trajectory_matching_loss,
    unroll_sgd,
)
from distillkit.distill.eval_augment import dc_augment
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

# ---------------------------------------------------------------- tiny data
G = torch.Generator().manual_seed(0)
XV = torch.randn(20, 4, generator=G)  # vectors
YV = torch.arange(20) % 2
XI = torch.randn(12, 1, 8, 8, generator=G)  # images
YI = torch.arange(12) % 2
META = XV.to("meta")
HALF = XV.half()
BIG_Y = YV.clone()
BIG_Y[0] = 10**9
OUT_Y = YV.clone()
OUT_Y[0] = 5  # a class the 2-output network cannot predict


def mlp(generator=None):
    return MLP(4, 2, hidden=(3,), generator=generator)


def _buffer():
    return train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=2, generator=0)


BUF = _buffer()

# (function name in the message, parameter name(s), thunk)
CASES = []


def case(func, param, thunk, name):
    CASES.append(pytest.param(func, param, thunk, id=f"{func}-{name}"))


_METHOD_OPTS = {
    "dc": dict(steps=1, batch_real=4, outer_loop=1, inner_loop=1),
    "dsa": dict(steps=1, batch_real=4, outer_loop=1, inner_loop=1, dsa_strategy="color"),
    "dm": dict(steps=1, batch_real=4, dsa=False),
    "dd": dict(steps=1, inner_steps=1, inner_epochs=1, batch_real=8),
    "mtt": dict(steps=1, syn_steps=1, expert_epochs=1, experts=BUF),
    "kip": dict(steps=1, kernel="rbf", batch_real=4),
}
for _m, _o in _METHOD_OPTS.items():
    _x = XI if _m == "dsa" else XV
    _y = YI if _m == "dsa" else YV
    _opts = dict(_o)
    if _m != "kip":
        _opts["model_fn"] = mlp if _m != "dsa" else None
    case(_m, "x", lambda m=_m, o=_opts: distill(m, META, YV, 1, **o), "x-meta")
    case(_m, "x", lambda m=_m, o=_opts: distill(m, torch.tensor(1.0), YV, 1, **o), "x-0d")
    case(_m, "x", lambda m=_m, o=_opts: distill(m, torch.randn(20), YV, 1, **o), "x-1d")
    case(_m, "x", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x.half(), y, 1, **o), "x-float16")
    case(_m, "y", lambda m=_m, o=_opts, x=_x: distill(m, x, torch.arange(x.shape[0]).to("meta"), 1, **o), "y-meta")
    case(_m, "callback", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x, y, 1, callback=5, **o), "callback")
    case(_m, "progress", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x, y, 1, progress="yes", **o), "progress")
    case(_m, "generator", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x, y, 1, generator="a", **o), "generator")
    case(_m, "steps", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x, y, 1, **{**o, "steps": 0}), "steps")
    case(_m, "ipc", lambda m=_m, o=_opts, x=_x, y=_y: distill(m, x, y, 1.5, **o), "ipc-float")
    if _m not in ("dsa", "kip"):
        case(_m, ("y", "model_fn"), lambda m=_m, o=_opts: distill(m, XV, OUT_Y, 1, **o), "y-out-of-range")
    if _m != "mtt":
        _d = {k: v for k, v in _opts.items() if k != "model_fn"}
        case(_m, "y", lambda m=_m, o=_d, x=_x: distill(m, x, BIG_Y[:x.shape[0]], 1, **o), "y-1e9-default-model")
case("mtt", "augment", lambda: distill("mtt", XV, YV, 1, augment=5, **_METHOD_OPTS["mtt"], model_fn=mlp), "augment")
case("dc", "robust", lambda: distill("dc", XV, YV, 1, robust=5, model_fn=mlp, **_METHOD_OPTS["dc"]), "robust")
case("dm", "robust", lambda: distill("dm", XV, YV, 1, robust=5, model_fn=mlp, **_METHOD_OPTS["dm"]), "robust")
case("mtt", "experts", lambda: distill("mtt", XV, YV, 1, model_fn=mlp, steps=1, syn_steps=1,
                                       experts=ExpertBuffer(torch.full_like(BUF.trajectories, float("nan")))),
     "experts-nan")
case("distill", "method", lambda: distill("nope", XV, YV, 1), "method")

# train_expert_trajectories
_TE = dict(model_fn=mlp, n_experts=1, epochs=1, generator=0)
case("train_expert_trajectories", "x", lambda: train_expert_trajectories(META, YV, **_TE), "x-meta")
case("train_expert_trajectories", "x", lambda: train_expert_trajectories(torch.tensor(1.0), YV, **_TE), "x-0d")
case("train_expert_trajectories", "x", lambda: train_expert_trajectories(torch.randn(20), YV, **_TE), "x-1d")
case("train_expert_trajectories", "x", lambda: train_expert_trajectories(HALF, YV, **_TE), "x-float16")
case("train_expert_trajectories", ("y", "model_fn"), lambda: train_expert_trajectories(XV, OUT_Y, **_TE),
     "y-out-of-range")
case("train_expert_trajectories", "augment", lambda: train_expert_trajectories(XV, YV, augment=5, **_TE), "augment")
case("train_expert_trajectories", "progress", lambda: train_expert_trajectories(XV, YV, progress="y", **_TE),
     "progress")
case("train_expert_trajectories", "model_fn", lambda: train_expert_trajectories(XV, YV, **{**_TE, "model_fn": 5}),
     "model_fn")

# shared machinery
case("init_synthetic", "x", lambda: init_synthetic(META, YV, 1), "x-meta")
case("init_synthetic", "x", lambda: init_synthetic(torch.tensor(1.0), YV, 1), "x-0d")
case("init_synthetic", "y", lambda: init_synthetic(XV, YV.double(), 1), "y-float")
case("init_synthetic", "ipc", lambda: init_synthetic(XV, YV, 11), "ipc-too-large")
case("init_synthetic", "ipc", lambda: init_synthetic(XV, YV, 0), "ipc-0")
case("check_ipc", "x", lambda: check_ipc(META, YV, 1, "check_ipc"), "x-meta")
case("check_ipc", "x", lambda: check_ipc(HALF, YV, 1, "check_ipc"), "x-float16")
case("ClassSampler", "y", lambda: ClassSampler(YV.double()), "y-float")
case("ClassSampler", "y", lambda: ClassSampler(YV.to("meta")), "y-meta")
case("ClassSampler", "y", lambda: ClassSampler(5), "y-int")
case("ClassSampler.sample", "c", lambda: ClassSampler(YV).sample(7, 2, torch.Generator()), "c-unknown")
case("ClassSampler.sample", "size", lambda: ClassSampler(YV).sample(0, 0, torch.Generator()), "size-0")
case("step_batches", "ipc", lambda: step_batches(0, 2), "ipc-0")
case("step_batches", "inner_steps", lambda: step_batches(2, "a"), "inner_steps-str")
case("default_loops", "ipc", lambda: default_loops(0), "ipc-0")
case("dd_train", "model", lambda: dd_train(5, distill("dd", XV, YV, 1, model_fn=mlp, steps=1, inner_steps=1,
                                                       inner_epochs=1, generator=0)), "model")
case("unroll_sgd", "model", lambda: unroll_sgd(5, torch.zeros(3), [], torch.zeros(0)), "model")
case("unroll_sgd", "theta", lambda: unroll_sgd(nn.Linear(2, 2), torch.zeros(6).to("meta"), [], torch.zeros(0)),
     "theta-meta")
case("unroll_sgd", "lrs", lambda: unroll_sgd(nn.Linear(2, 2), torch.zeros(6), [], [0.1]), "lrs-list")
case("unroll_sgd", "batches", lambda: unroll_sgd(nn.Linear(2, 2), torch.zeros(6), 5, torch.zeros(1)), "batches")

# augmentation
case("apply_aug", "x", lambda: apply_aug(XI.to("meta"), sample_aug_params("color", generator=0)), "x-meta")
case("apply_aug", "x", lambda: apply_aug(XI.half(), sample_aug_params("scale", generator=0)), "x-float16")
case("sample_aug_params", "strategy", lambda: sample_aug_params("blur"), "strategy")
case("sample_aug_params", "batch_size", lambda: sample_aug_params("color", batch_size=0), "batch_size")
case("siamese_augment", "x_real", lambda: siamese_augment(XI.to("meta"), XI, generator=0), "x_real-meta")
case("dsa_augment", "x", lambda: dsa_augment(XI.to("meta"), 0), "x-meta")
case("dsa_augment", "x", lambda: dsa_augment(XI.half(), 0, "scale"), "x-float16")
case("dsa_augment", "strategy", lambda: dsa_augment(XI, 0, "blur"), "strategy")
case("dc_augment", "x", lambda: dc_augment(XI.to("meta"), 0), "x-meta")
case("dc_augment", "x", lambda: dc_augment(XI.half(), 0), "x-float16")

# losses
case("distribution_matching_loss", "f_real", lambda: distribution_matching_loss(META, XV), "f_real-meta")
case("distribution_matching_loss", "f_real", lambda: distribution_matching_loss(torch.randn(4), XV), "f_real-1d")
case("gradient_matching_distance", "g_syn", lambda: gradient_matching_distance([META], [XV]), "g_syn-meta")
case("gradient_matching_distance", "metric", lambda: gradient_matching_distance([XV], [XV], metric="l1"),
     "metric")
case("trajectory_matching_loss", "theta_student",
     lambda: trajectory_matching_loss(torch.zeros(3).to("meta"), torch.zeros(3), torch.ones(3)), "meta")
case("gaussian_kernel", "bandwidth", lambda: gaussian_kernel(0.0), "bandwidth-0")
case("kernel_ridge", "x_support", lambda: kernel_ridge(META, torch.zeros(20, 2), XV, gaussian_kernel()), "meta")
case("kernel_ridge", "kernel", lambda: kernel_ridge(XV, torch.zeros(20, 2), XV, 5), "kernel")

# kernels
case("ntk_features", "models", lambda: ntk_features(5, XV), "models")
case("ntk_features", "x", lambda: ntk_features(nn.Linear(4, 1), META), "x-meta")
case("ntk_features", "x", lambda: ntk_features(nn.Linear(4, 1), torch.tensor(1.0)), "x-0d")
case("ntk_features", "chunk", lambda: ntk_features(nn.Linear(4, 1), XV, chunk=0), "chunk-0")
case("empirical_ntk", "model", lambda: empirical_ntk(5, XV), "model")
case("empirical_ntk", "x1", lambda: empirical_ntk(nn.Linear(4, 1), META), "x1-meta")
case("empirical_ntk", "x2", lambda: empirical_ntk(nn.Linear(4, 1), XV, torch.randn(3, 5)), "x2-shape")
case("median_bandwidth", "x", lambda: median_bandwidth(XV[:1]), "x-one-row")
case("median_bandwidth", "x", lambda: median_bandwidth(torch.zeros(5, 3)), "x-identical-rows")
case("median_bandwidth", "x", lambda: median_bandwidth(META), "x-meta")
case("median_bandwidth", "x", lambda: median_bandwidth(torch.tensor(1.0)), "x-0d")
case("median_bandwidth", "x", lambda: median_bandwidth([1.0, 2.0]), "x-list")
case("median_bandwidth", "x", lambda: median_bandwidth(HALF), "x-float16")
case("median_bandwidth", "x", lambda: median_bandwidth(torch.tensor([[0.0], [float("nan")], [1.0]])), "x-nan")
case("median_bandwidth", "max_points", lambda: median_bandwidth(XV, max_points=0), "max_points-0")
case("make_kernel", "kernel", lambda: make_kernel("poly", XV), "kernel")
case("make_kernel", "x", lambda: make_kernel("rbf", META), "x-meta")
case("make_kernel", "x", lambda: make_kernel("rbf", torch.zeros(5, 3)), "x-degenerate")
case("make_kernel", "n_models", lambda: make_kernel("ntk", XV, n_models=0), "n_models")

# experts
case("expert_buffer_size", "model", lambda: expert_buffer_size(0, 1, 1), "model-0")
case("expert_buffer_size", "dtype", lambda: expert_buffer_size(10, 1, 1, torch.int64), "dtype")
case("expert_buffer_size", "model", lambda: expert_buffer_size("net", 1, 1), "model-str")
case("load_expert_trajectories", "path", lambda: load_expert_trajectories(5), "path-int")

# robust
case("cvar", "losses", lambda: cvar(torch.zeros(3).to("meta"), 0.5), "losses-meta")
case("cvar", "losses", lambda: cvar(torch.tensor(1.0), 0.5), "losses-0d")
case("cvar", "alpha", lambda: cvar(torch.zeros(3), 2.0), "alpha")
case("cvar_weights", "losses", lambda: cvar_weights(torch.zeros(3).to("meta"), 0.5), "losses-meta")
case("group_cvar_risk", "groups", lambda: group_cvar_risk(torch.zeros(3), torch.zeros(3), 0.5), "groups-float")
case("group_cvar_weights", "groups", lambda: group_cvar_weights(torch.zeros(3), torch.zeros(3, dtype=torch.long)
                                                                 .to("meta"), 0.5), "groups-meta")
case("kmeans_groups", "features", lambda: kmeans_groups(META, 2, generator=0), "features-meta")
case("kmeans_groups", "features", lambda: kmeans_groups(HALF, 2, generator=0), "features-float16")
case("pixel_clusters", "x", lambda: pixel_clusters(META, 2), "x-meta")
case("pixel_clusters", "x", lambda: pixel_clusters(torch.tensor(1.0), 2), "x-0d")
case("voronoi_groups", "f_real", lambda: voronoi_groups(META, XV), "f_real-meta")
case("voronoi_groups", "f_real", lambda: voronoi_groups(HALF, XV), "f_real-float16")
case("group_accuracy", "model", lambda: group_accuracy(5, XV, YV, YV), "model")
case("group_accuracy", "x", lambda: group_accuracy(nn.Linear(4, 2), META, YV, YV), "x-meta")
case("group_accuracy", "groups", lambda: group_accuracy(nn.Linear(4, 2), XV, YV, YV.double()), "groups-float")
case("group_accuracy", "y", lambda: group_accuracy(nn.Linear(4, 2), XV, OUT_Y, YV), "y-out-of-range")
case("group_accuracy", "x", lambda: group_accuracy(nn.Linear(4, 2), XV.double(), YV, YV), "x-dtype-of-model")
case("released_cvar", "losses", lambda: released_cvar(np.array([1.0, float("nan"), 2.0]), 0.5), "losses-nan")
case("released_cvar", "losses", lambda: released_cvar(np.array([1.0, float("inf")]), 0.5), "losses-inf")
case("released_cvar", "losses", lambda: released_cvar("abc", 0.5), "losses-str")
case("released_group_risk", "groups", lambda: released_group_risk(np.ones(3), np.ones(3) * 0.5, 0.5), "groups")
case("GroupCVaRTarget", "alpha", lambda: GroupCVaRTarget(alpha=1.0), "alpha")
case("GroupCVaRTarget", "generator", lambda: GroupCVaRTarget(generator="a"), "generator")
case("GroupCVaRTarget.gradient_loss", "net", lambda: GroupCVaRTarget().gradient_loss(5, XV, YV, XV, YV), "net")
case("GroupCVaRTarget.gradient_loss", "x_real",
     lambda: GroupCVaRTarget(embed=lambda n, x: x).gradient_loss(mlp(0), META, YV, XV, YV), "x_real-meta")
case("GroupCVaRTarget.gradient_loss", "y_real",
     lambda: GroupCVaRTarget(embed=lambda n, x: x).gradient_loss(mlp(0), XV, OUT_Y, XV[:3], OUT_Y[:3]),
     "y_real-out-of-range")
case("GroupCVaRTarget.gradient_loss", "y_syn",
     lambda: GroupCVaRTarget(embed=lambda n, x: x).gradient_loss(mlp(0), XV, OUT_Y, XV[:2], YV[:2]),
     "y_syn-missing-class")
case("GroupCVaRTarget.gradient_loss", "y_real",
     lambda: GroupCVaRTarget(embed=lambda n, x: x).gradient_loss(mlp(0), XV, YV.double(), XV[:2], YV[:2]),
     "y_real-float")
case("GroupCVaRTarget.groups", "x_real",
     lambda: GroupCVaRTarget(embed=lambda n, x: x).groups(mlp(0), META, YV, XV, YV), "x_real-meta")
case("GroupCVaRTarget.feature_target", "f_real", lambda: GroupCVaRTarget().feature_target(META, XV), "meta")
case("GroupCVaRTarget.feature_target", "f_real", lambda: GroupCVaRTarget().feature_target(HALF, XV[:2]), "float16")


@pytest.mark.parametrize("func, param, thunk", CASES)
def test_sweep_bad_input_gives_the_promised_error(func, param, thunk):
    params = (param,) if isinstance(param, str) else param
    with pytest.raises((TypeError, ValueError)) as info:
        thunk()
    message = str(info.value)
    assert any(f"The {p!r} parameter of {func} must be" in message for p in params), message


# ---------------------------------------------------------------- regression tests of the audit's defects
from distillkit.distill._base import _seed  # noqa: E402
from distillkit.distill.augment import FAMILIES, _apply, _sample  # noqa: E402
from distillkit.models import ConvNet  # noqa: E402


def _convnet(generator=None):
    return ConvNet(1, 2, im_size=8, width=4, depth=2, generator=generator).double()


def _manual_dm_per_class(x, y, ipc, family, steps, lr_img, batch_real, seed):
    """DM's memory mode written out: class after class, slice the *current* images, draw one
    Siamese augmentation, one image step (the same random draws, in the same order, as dm)."""
    gen = torch.Generator().manual_seed(seed)
    x_syn, _ = init_synthetic(x, y, ipc, generator=gen)
    x_syn.requires_grad_(True)
    sampler = ClassSampler(y)
    opt = torch.optim.SGD([x_syn], lr=lr_img, momentum=0.5)
    for _ in range(steps):
        net = _convnet(generator=_seed(gen)).train()
        for p in net.parameters():
            p.requires_grad_(False)
        for k, c in enumerate(sampler.classes):
            xr = x[sampler.sample(c, batch_real, gen)]
            params = _sample([family], 1, gen)
            xr, xs = _apply(xr, params), _apply(x_syn[k * ipc:(k + 1) * ipc], params)
            with torch.no_grad():
                f_real = net.embed(xr)
            loss = ((f_real.mean(0) - net.embed(xs).mean(0)) ** 2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return x_syn.detach()


@pytest.mark.parametrize("family", FAMILIES)
def test_dm_per_class_step_with_dsa_augments_the_current_images(family):
    """Item 2: before the fix, scale/rotate raised 'modified by an inplace operation' and the other
    families matched images out of date by the earlier classes' steps (momentum moves every slice)."""
    x = XI.double()
    s = dm(x, YI, 2, model_fn=_convnet, steps=3, batch_real=4, lr_img=0.5, dsa_strategy=family,
           per_class_step=True, generator=0)
    expected = _manual_dm_per_class(x, YI, 2, family, 3, 0.5, 4, 0)
    torch.testing.assert_close(s.x, expected, rtol=1e-12, atol=1e-12)
    assert not torch.equal(s.x, s.history[0][1])


@pytest.mark.parametrize("method", ["dc", "dm"])
def test_kmeans_robust_target_is_reproducible_under_the_methods_seed(method):
    """Item 5: k-means subgroups draw from the distill call's generator: two calls with the same
    seed agree, whatever the targets' own (OS-seeded) generators, and reusing one target does too."""
    opts = dict(model_fn=mlp, steps=3, batch_real=10, generator=0)
    if method == "dc":
        opts.update(outer_loop=2, inner_loop=1)
    else:
        opts.update(dsa=False)
    x, y = torch.randn(40, 4, generator=torch.Generator().manual_seed(1)), torch.arange(40) % 2
    runs = [distill(method, x, y, 3, robust=GroupCVaRTarget(grouping="kmeans"), **opts).x for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    target = GroupCVaRTarget(grouping="kmeans", generator=5)
    again = [distill(method, x, y, 3, robust=target, **opts).x for _ in range(2)]
    assert torch.equal(again[0], again[1]) and torch.equal(again[0], runs[0])
    other = distill(method, x, y, 3, robust=GroupCVaRTarget(grouping="kmeans"), **{**opts, "generator": 1}).x
    assert not torch.equal(other, runs[0])


def test_kmeans_target_called_directly_gives_the_same_groups_every_call():
    net = mlp(0)
    x, y = torch.randn(30, 4, generator=torch.Generator().manual_seed(2)), torch.arange(30) % 2
    target = GroupCVaRTarget(grouping="kmeans", embed=lambda n, v: v)
    first = [target.groups(net, x, y, x[:6], y[:6]) for _ in range(5)]
    assert all(torch.equal(first[0], g) for g in first)
    seeded = [target.groups(net, x, y, x[:6], y[:6], generator=s) for s in range(6)]
    assert seeded[0].equal(target.groups(net, x, y, x[:6], y[:6], generator=0))


@pytest.mark.parametrize("method", ["dc", "dsa", "dm"])
def test_non_finite_step_is_an_error_not_nan_images(method):
    """Item 6: inputs of magnitude 1e30 overflow the matching loss; before the fix the methods
    returned all-NaN images with no error."""
    opts = dict(steps=2, batch_real=4, generator=0)
    if method != "dm":
        opts.update(outer_loop=1, inner_loop=1)
    if method == "dsa":
        opts.update(dsa_strategy="color")
    x = XI * 1e30 if method == "dsa" else XV * 1e30
    y = YI if method == "dsa" else YV
    if method != "dsa":
        opts.update(model_fn=mlp, **({"dsa": False} if method == "dm" else {}))
    with pytest.raises(FloatingPointError, match=rf"{method} stopped at step 1: .* not finite.* magnitude of "
                                                 r"[0-9.]+e\+30"):
        distill(method, x, y, 1, **opts)


def test_dd_refuses_float16_at_the_boundary():
    """Item 6: dd on float16 data returned all-inf/NaN images (Adam's steps overflow in half precision)."""
    with pytest.raises(TypeError, match="The 'x' parameter of dd must be a float32 or float64 tensor"):
        distill("dd", HALF, YV, 1, model_fn=mlp, steps=2, inner_steps=1, inner_epochs=1, generator=0)


def test_mtt_refuses_nan_experts():
    """Item 6: all-NaN trajectories skipped every step and returned the initial images."""
    nan = ExpertBuffer(torch.full_like(BUF.trajectories, float("nan")))
    with pytest.raises(ValueError, match="The 'experts' parameter of mtt must be finite"):
        distill("mtt", XV, YV, 1, experts=nan, model_fn=mlp, steps=2, syn_steps=1, generator=0)


def test_init_synthetic_refuses_an_ipc_larger_than_a_class():
    """Item 8: returned 12 images and 20 labels for classes of 6 and 10 examples."""
    y = torch.tensor([0] * 6 + [1] * 10)
    with pytest.raises(ValueError, match=r"'ipc' parameter of init_synthetic must be at most the size of the "
                                         r"smallest class \(6 examples, class 0\)"):
        init_synthetic(torch.randn(16, 3), y, 10)
    x_syn, y_syn = init_synthetic(torch.randn(16, 3), y, 6, generator=0)
    assert x_syn.shape[0] == y_syn.shape[0] == 12


def test_median_bandwidth_positive_or_an_error():
    with pytest.raises(ValueError, match="'x' parameter of median_bandwidth must be a tensor with at least 2 rows"):
        median_bandwidth(torch.ones(1, 3))
    with pytest.raises(ValueError, match="median pairwise distance is positive.*Got a median pairwise distance of 0"):
        median_bandwidth(torch.tensor([[0.0], [0.0], [0.0], [1.0]]))  # 3 of 6 pairs coincide, median 0
    with pytest.raises(ValueError, match="'x' parameter of kip must be data whose median pairwise distance"):
        distill("kip", torch.zeros(10, 2), torch.arange(10) % 2, 1, kernel="rbf", steps=1, batch_real=4)
    assert median_bandwidth(torch.tensor([[0.0], [3.0]])) == 3.0


def test_released_cvar_refuses_nan():
    with pytest.raises(ValueError, match="'losses' parameter of released_cvar must be finite.*1 NaN or infinite"):
        released_cvar([1.0, float("nan"), 3.0], 0.5)
    assert released_cvar(np.arange(1.0, 11.0), 0.8) == 5.625


# -- expert buffers (item 9)
def test_buffer_manifest_is_checksummed(tmp_path):
    path = tmp_path / "experts.pt"
    train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=2, generator=0, path=path)
    assert load_expert_trajectories(path).manifest["lr"] == 0.01
    blob = torch.load(path, weights_only=True)
    bits = np.array([blob["manifest"]["lr"]]).view(np.uint64) ^ np.uint64(1 << 3)  # one flipped bit in the lr
    blob["manifest"]["lr"] = float(bits.view(np.float64)[0])
    torch.save(blob, path)
    with pytest.raises(ValueError, match="'path' parameter of load_expert_trajectories must be a buffer whose "
                                         "manifest matches its SHA-256.*corrupted or was modified"):
        load_expert_trajectories(path)
    del blob["manifest"]["manifest_sha256"]
    torch.save(blob, path)
    with pytest.raises(ValueError, match="manifest carries its own SHA-256"):
        load_expert_trajectories(path)


def test_flipped_bit_in_the_file_is_named(tmp_path):
    path = tmp_path / "experts.pt"
    train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=2, generator=0, path=path)
    raw = bytearray(path.read_bytes())
    at = raw.find(np.array([0.01]).astype(">f8").tobytes())  # the pickled lr (BINFLOAT, big-endian)
    assert at > 0
    raw[at + 7] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="'path' parameter of load_expert_trajectories") as info:
        load_expert_trajectories(path)
    assert "experts.pt" in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_buffer_names_the_file(tmp_path, damage):
    path = tmp_path / "experts.pt"
    train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=2, generator=0, path=path)
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"not a buffer" * 50, "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"'path' parameter of load_expert_trajectories must be a readable buffer "
                                         r"written by train_expert_trajectories\. Got '.*experts\.pt', which cannot"):
        load_expert_trajectories(path)


def test_existing_buffer_is_not_overwritten_silently(tmp_path):
    path = tmp_path / "experts.pt"
    path.write_bytes(b"precious")
    with pytest.raises(ValueError, match="'path' parameter of train_expert_trajectories must be a path where no "
                                         "file exists yet \\(or pass overwrite=True\\)"):
        train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=1, generator=0, path=path)
    assert path.read_bytes() == b"precious"
    buf = train_expert_trajectories(XV, YV, model_fn=mlp, n_experts=1, epochs=1, generator=0, path=path,
                                    overwrite=True)
    assert torch.equal(load_expert_trajectories(path).trajectories, buf.trajectories)
    assert not (tmp_path / "experts.pt.part").exists()


# -- MTT's minibatches follow the reference (GeorgeCazenavette/mtt-distillation, distill.py)
def test_mtt_minibatches_are_the_references_chunks():
    """The reference splits a fresh permutation per iteration into chunks of batch_syn and pops them
    from the end: with 6 images and batch_syn=4 the student sees 2, 4, then (new permutation) 2 images.
    Before, the short chunk was dropped (4, 4, 4) and permutations carried over between iterations."""
    seen = []

    def record(xb, generator):
        seen.append(xb.detach().clone())
        return xb

    distill("mtt", XV, YV, 3, experts=BUF, model_fn=mlp, steps=2, syn_steps=3, expert_epochs=1, batch_syn=4,
            augment=record, lr_img=1.0, generator=0)
    assert [b.shape[0] for b in seen] == [2, 4, 2, 2, 4, 2]
    for first in (0, 3):  # the first two batches of each iteration are one permutation of the 6 images
        assert torch.unique(torch.cat(seen[first:first + 2]), dim=0).shape[0] == 6
