"""Audit of issue 14 for data, models, theory, plots, widgets and exercises.

``test_bad_input_is_a_clear_error`` sweeps every public function of those packages with
the bad inputs the audit named (meta-device tensors, wrong dims, float16, unknown options,
wrong types): each call must raise TypeError or ValueError in the library's one message
form, naming the public function and the parameter the caller used.
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from distillkit import data, models, plots, theory, widgets  # noqa: E402
from distillkit.data import subgroups  # noqa: E402

FORM = re.compile(r"^The '(?P<param>[\w.]+)' parameter of (?P<func>[\w.]+) must be .+\. Got .+ instead\.", re.S)


def meta(*shape):
    return torch.empty(*shape, device="meta")


def net(d=3):
    return models.TwoLayerNet(d, 4, generator=0)


def _fig():
    fig, _ = plt.subplots()
    return fig


X4 = torch.rand(4, 1, 8, 8)
X2 = torch.rand(6, 2)
Y6 = torch.tensor([0, 1, 0, 1, 0, 1])
U = torch.linalg.qr(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))[0]

# (id, call, function named in the message, parameter named in the message)
CASES = [
    # data
    ("load_mnist-progress", lambda tmp: data.load_mnist(tmp, download=False, progress="yes"), "load_mnist", "progress"),
    ("load_fashion_mnist-progress", lambda tmp: data.load_fashion_mnist(tmp, download=False, progress=1),
     "load_fashion_mnist", "progress"),
    ("load_mnist-mirrors-int", lambda tmp: data.load_mnist(tmp, mirrors=5), "load_mnist", "mirrors"),
    ("load_mnist-mirrors-empty", lambda tmp: data.load_mnist(tmp, mirrors=[]), "load_mnist", "mirrors"),
    ("load_mnist-mirrors-item", lambda tmp: data.load_mnist(tmp, mirrors=[b"http://x/"]), "load_mnist", "mirrors"),
    ("load_mnist-deadline-0", lambda tmp: data.load_mnist(tmp, download=False, deadline=0), "load_mnist", "deadline"),
    ("load_mnist-deadline-str", lambda tmp: data.load_mnist(tmp, download=False, deadline="9"), "load_mnist",
     "deadline"),
    ("gaussian_noise-meta", lambda tmp: subgroups.gaussian_noise(meta(2, 1, 4, 4)), "gaussian_noise", "x"),
    ("gaussian_blur-meta", lambda tmp: subgroups.gaussian_blur(meta(2, 1, 4, 4)), "gaussian_blur", "x"),
    ("invert-meta", lambda tmp: subgroups.invert(meta(2, 1, 4, 4)), "invert", "x"),
    ("shifted_test_sets-meta", lambda tmp: subgroups.shifted_test_sets(meta(2, 1, 4, 4)), "shifted_test_sets",
     "x"),
    ("color_digits-meta", lambda tmp: subgroups.color_digits(meta(2, 1, 4, 4), torch.tensor([0, 1])),
     "color_digits", "x"),
    # models
    ("MLP-hidden-int", lambda tmp: models.MLP(4, 2, hidden=5), "MLP", "hidden"),
    ("MLP-forward-list", lambda tmp: models.MLP(4, 2, hidden=(3,), generator=0)([[1.0] * 4]), "MLP.forward", "x"),
    ("MLP-forward-meta", lambda tmp: models.MLP(4, 2, hidden=(3,), generator=0)(meta(2, 4)), "MLP.forward", "x"),
    ("MLP-forward-int", lambda tmp: models.MLP(4, 2, hidden=(3,), generator=0)(torch.ones(2, 4, dtype=torch.long)),
     "MLP.forward", "x"),
    ("MLP-forward-0d", lambda tmp: models.MLP(1, 2, hidden=(3,), generator=0)(torch.tensor(1.0)), "MLP.forward", "x"),
    ("ConvNet-forward-meta", lambda tmp: models.ConvNet(1, 2, im_size=8, width=4, depth=1, generator=0)(
        meta(2, 1, 8, 8)), "ConvNet.forward", "x"),
    ("ConvNet-forward-list", lambda tmp: models.ConvNet(1, 2, im_size=8, width=4, depth=1, generator=0)([1.0]),
     "ConvNet.forward", "x"),
    ("ConvNet-forward-int", lambda tmp: models.ConvNet(1, 2, im_size=8, width=4, depth=1, generator=0)(
        torch.ones(2, 1, 8, 8, dtype=torch.long)), "ConvNet.forward", "x"),
    ("TwoLayerNet-forward-1d", lambda tmp: net()(torch.ones(3)), "TwoLayerNet.forward", "x"),
    ("TwoLayerNet-forward-cols", lambda tmp: net()(torch.ones(2, 5)), "TwoLayerNet.forward", "x"),
    ("TwoLayerNet-forward-meta", lambda tmp: net()(meta(2, 3)), "TwoLayerNet.forward", "x"),
    ("init_parameters-model", lambda tmp: models.init_parameters("net", 0), "init_parameters", "model"),
    ("init_parameters-generator", lambda tmp: models.init_parameters(net(), "seed"), "init_parameters", "generator"),
    # theory
    ("apply_activation-unknown", lambda tmp: theory.apply_activation(torch.ones(3), "gelu"), "apply_activation",
     "name"),
    ("apply_activation-z", lambda tmp: theory.apply_activation([1.0], "relu"), "apply_activation", "z"),
    ("apply_activation-int", lambda tmp: theory.apply_activation(torch.ones(3, dtype=torch.long), "tanh"),
     "apply_activation", "z"),
    ("activation_derivative-unknown", lambda tmp: theory.activation_derivative(torch.ones(3), "sigmoid"),
     "activation_derivative", "name"),
    ("activation_derivative-meta", lambda tmp: theory.activation_derivative(meta(3), "relu"),
     "activation_derivative", "z"),
    ("random_subspace-int64", lambda tmp: theory.random_subspace(4, 2, dtype=torch.int64), "random_subspace", "dtype"),
    ("random_subspace-str", lambda tmp: theory.random_subspace(4, 2, dtype="float32"), "random_subspace", "dtype"),
    ("subspace_fraction-meta", lambda tmp: theory.subspace_fraction(meta(2, 3), U), "subspace_fraction", "x"),
    ("principal_angles-meta", lambda tmp: theory.principal_angles(meta(3, 2), U), "principal_angles", "A"),
    ("outside_fraction-meta", lambda tmp: theory.outside_fraction(meta(4, 3), U), "outside_fraction", "G"),
    ("ridge_fit-meta", lambda tmp: theory.ridge_fit(meta(4, 3), torch.ones(4), 0.1), "ridge_fit", "features"),
    ("relative_mse-meta", lambda tmp: theory.relative_mse(meta(4), torch.ones(4)), "relative_mse", "pred"),
    ("gradient_matching_loss-meta", lambda tmp: theory.gradient_matching_loss(meta(4, 3), torch.ones(4, 3)),
     "gradient_matching_loss", "g_syn"),
    ("first_layer_gradient-meta", lambda tmp: theory.first_layer_gradient(net(), meta(4, 3), torch.ones(4)),
     "first_layer_gradient", "x"),
    ("fit_second_layer-meta", lambda tmp: theory.fit_second_layer(meta(4, 3), torch.ones(5, 3), torch.ones(5)),
     "fit_second_layer", "W"),
    # plots
    ("image_grid-type", lambda tmp: plots.image_grid("abc"), "image_grid", "images"),
    ("image_grid-2d", lambda tmp: plots.image_grid(torch.rand(8, 8)), "image_grid", "images"),
    ("image_grid-5d", lambda tmp: plots.image_grid(torch.rand(1, 1, 1, 8, 8)), "image_grid", "images"),
    ("image_grid-empty", lambda tmp: plots.image_grid(torch.rand(0, 1, 8, 8)), "image_grid", "images"),
    ("image_grid-channels", lambda tmp: plots.image_grid(torch.rand(2, 2, 8, 8)), "image_grid", "images"),
    ("image_grid-meta", lambda tmp: plots.image_grid(meta(2, 1, 8, 8)), "image_grid", "images"),
    ("image_grid-nan", lambda tmp: plots.image_grid(torch.full((2, 1, 4, 4), float("nan"))), "image_grid", "images"),
    ("image_grid-nrow", lambda tmp: plots.image_grid(X4, nrow=0), "image_grid", "nrow"),
    ("image_grid-labels", lambda tmp: plots.image_grid(X4, labels=[0, 1]), "image_grid", "labels"),
    ("image_grid-ax", lambda tmp: plots.image_grid(X4, ax="left"), "image_grid", "ax"),
    ("accuracy_curve-results", lambda tmp: plots.accuracy_curve([1, 2], "random"), "accuracy_curve", "results"),
    ("accuracy_curve-rows", lambda tmp: plots.accuracy_curve([1, 2], {"r": [(0.5, 0.1)]}), "accuracy_curve",
     "results"),
    ("accuracy_curve-row", lambda tmp: plots.accuracy_curve([1, 2], {"r": [0.5, 0.6]}), "accuracy_curve", "results"),
    ("accuracy_curve-budgets", lambda tmp: plots.accuracy_curve(5, {"r": [(0.5, 0.1)]}), "accuracy_curve", "budgets"),
    ("accuracy_curve-logx-0", lambda tmp: plots.accuracy_curve([0, 1], {"r": [(0.5, 0.1)] * 2}), "accuracy_curve",
     "budgets"),
    ("accuracy_curve-full", lambda tmp: plots.accuracy_curve([1, 2], {"r": [(0.5, 0.1)] * 2}, full="0.9"),
     "accuracy_curve", "full"),
    ("accuracy_curve-logx", lambda tmp: plots.accuracy_curve([1, 2], {"r": [(0.5, 0.1)] * 2}, logx="yes"),
     "accuracy_curve", "logx"),
    ("selection_scatter-1d", lambda tmp: plots.selection_scatter(torch.rand(6), Y6), "selection_scatter", "x"),
    ("selection_scatter-3cols", lambda tmp: plots.selection_scatter(torch.rand(6, 3), Y6), "selection_scatter", "x"),
    ("selection_scatter-meta", lambda tmp: plots.selection_scatter(meta(6, 2), Y6), "selection_scatter", "x"),
    ("selection_scatter-x-type", lambda tmp: plots.selection_scatter([[0.0, 1.0]], Y6), "selection_scatter", "x"),
    ("selection_scatter-y-float", lambda tmp: plots.selection_scatter(X2, Y6.float()), "selection_scatter", "y"),
    ("selection_scatter-y-len", lambda tmp: plots.selection_scatter(X2, Y6[:4]), "selection_scatter", "y"),
    ("selection_scatter-y-neg", lambda tmp: plots.selection_scatter(X2, -Y6), "selection_scatter", "y"),
    ("selection_scatter-indices-range", lambda tmp: plots.selection_scatter(X2, Y6, [0, 9]), "selection_scatter",
     "indices"),
    ("selection_scatter-indices-float", lambda tmp: plots.selection_scatter(X2, Y6, [0.5, 1.2]),
     "selection_scatter", "indices"),
    ("selection_scatter-weights-len", lambda tmp: plots.selection_scatter(X2, Y6, [0, 1], weights=[1.0]),
     "selection_scatter", "weights"),
    ("selection_scatter-weights-neg", lambda tmp: plots.selection_scatter(X2, Y6, [0, 1], weights=[-1.0, -2.0]),
     "selection_scatter", "weights"),
    ("selection_scatter-weights-alone", lambda tmp: plots.selection_scatter(X2, Y6, weights=[1.0] * 6),
     "selection_scatter", "weights"),
    # widgets
    ("figure_to_png-fig", lambda tmp: widgets.figure_to_png("figure"), "figure_to_png", "fig"),
    ("figure_to_png-dpi", lambda tmp: widgets.figure_to_png(_fig(), dpi=0), "figure_to_png", "dpi"),
    ("frame_explorer-str", lambda tmp: widgets.frame_explorer("<b>a</b>"), "frame_explorer", "frames"),
    ("frame_explorer-type", lambda tmp: widgets.frame_explorer(5), "frame_explorer", "frames"),
    ("frame_explorer-item", lambda tmp: widgets.frame_explorer([b"png", 7]), "frame_explorer", "frames"),
    ("frame_explorer-value", lambda tmp: widgets.frame_explorer(["<b>a</b>"], value=3), "frame_explorer", "value"),
    ("frame_explorer-value-bool", lambda tmp: widgets.frame_explorer(["<b>a</b>"], value=True), "frame_explorer",
     "value"),
    ("frame_explorer-description", lambda tmp: widgets.frame_explorer(["<b>a</b>"], description=3),
     "frame_explorer", "description"),
    ("frame_explorer-labels", lambda tmp: widgets.frame_explorer(["<b>a</b>"], labels=7), "frame_explorer", "labels"),
    ("live_explorer-function", lambda tmp: widgets.live_explorer("f"), "live_explorer", "function"),
]


@pytest.mark.parametrize("call, func, param", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(call, func, param, tmp_path):
    try:
        with pytest.raises((TypeError, ValueError)) as info:
            call(tmp_path)
        match = FORM.match(str(info.value))
        assert match, f"unclear message: {info.value}"
        assert (match["func"], match["param"]) == (func, param), str(info.value)
    finally:
        plt.close("all")

THEORY_CASES = [
    ("first_layer_gradient-f16", lambda: theory.first_layer_gradient(net(), torch.rand(4, 3).half(), torch.rand(4)),
     "first_layer_gradient", "x"),
    ("first_layer_step-f64-y", lambda: theory.first_layer_step(net(), torch.rand(4, 3), torch.rand(4).double()),
     "first_layer_step", "y"),
    ("two_stage_train-f16", lambda: theory.two_stage_train(net(), torch.rand(8, 3).half(), torch.rand(8)),
     "two_stage_train", "x"),
    ("two_stage_train-x2", lambda: theory.two_stage_train(net(), torch.rand(8, 3), torch.rand(8),
                                                          x2=torch.rand(8, 5), y2=torch.rand(8)), "two_stage_train",
     "x2"),
    ("fit_second_layer-mixed", lambda: theory.fit_second_layer(torch.rand(4, 3), torch.rand(5, 3).half(),
                                                               torch.rand(5)), "fit_second_layer", "x"),
    ("distill_first_layer_gradient-callback", lambda: theory.distill_first_layer_gradient(
        theory.MultiIndexTask(3, 2, generator=0), net(), 4, steps=2, n_real=20, generator=0, callback=5),
     "distill_first_layer_gradient", "callback"),
    ("TwoLayerFit-features", lambda: theory.TwoLayerFit(torch.ones(2, 3), torch.ones(2), torch.ones(2), "relu")
     .features(torch.ones(4, 5)), "TwoLayerFit.features", "x"),
]


@pytest.mark.parametrize("call, func, param", [c[1:] for c in THEORY_CASES], ids=[c[0] for c in THEORY_CASES])
def test_theory_bad_input_is_a_clear_error(call, func, param):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    match = FORM.match(str(info.value))
    assert match, f"unclear message: {info.value}"
    assert (match["func"], match["param"]) == (func, param), str(info.value)
