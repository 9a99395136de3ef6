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
