"""The core: validation messages, result types, models, training, evaluation, protocols,
plots and widgets."""

import dataclasses
import math

import pytest
import torch

import distillkit
from distillkit import EvalResult, Selection, SyntheticSet, accuracy, evaluate_set, seed_everything, train_model
from distillkit._validation import (
    check_budget,
    check_float,
    check_generator,
    check_int,
    check_option,
    check_tensor,
    check_xy,
)
from distillkit.models import MLP, ConvNet, TwoLayerNet
from distillkit.protocols import DIGITS, PAPER

# --- validation: one message form ---------------------------------------------------------


def test_message_form_names_parameter_function_expectation_and_value():
    with pytest.raises(ValueError) as info:
        check_budget(0, 500, "herding")
    assert str(info.value) == "The 'budget' parameter of herding must be an int in [1, 500]. Got 0 instead."


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: check_int(1.5, "k", "f"), TypeError, r"'k' parameter of f must be an int in \[-inf, inf\]. Got 1.5"),
        (lambda: check_int(True, "k", "f"), TypeError, "Got True"),
        (lambda: check_int(5, "k", "f", low=6), ValueError, r"\[6, inf\]. Got 5"),
        (lambda: check_float(float("nan"), "lr", "f", low=0), ValueError, "finite real number"),
        (lambda: check_float(0.0, "lr", "f", low=0, low_open=True), ValueError, r"in \(0, inf\]"),
        (lambda: check_option("x", "mode", "f", ("a", "b")), ValueError, "one of 'a', 'b'. Got 'x'"),
        (lambda: check_option(3, "mode", "f", ("a",)), TypeError, "Got 3"),
        (lambda: check_tensor([1, 2], "x", "f"), TypeError, "must be a torch.Tensor"),
        (lambda: check_tensor(torch.zeros(3), "x", "f", ndim=2), ValueError, "2-dimensional"),
        (lambda: check_tensor(torch.tensor([1.0, float("inf")]), "x", "f"), ValueError, "1 NaN or infinite"),
        (lambda: check_generator(-1, "f"), ValueError, "non-negative int seed"),
        (lambda: check_generator("seed", "f"), TypeError, "torch.Generator, an int seed or None"),
    ],
)
def test_validation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_check_xy():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="one label per row of x"):
        check_xy(x, torch.zeros(3, dtype=torch.int64), "f")
    with pytest.raises(TypeError, match="int64"):
        check_xy(x, torch.zeros(4, dtype=torch.int32), "f")
    with pytest.raises(ValueError, match="non-negative class labels"):
        check_xy(x, torch.tensor([0, 1, -1, 0]), "f")
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_xy(torch.tensor([[float("nan")]]), torch.tensor([0]), "f")


def test_check_tensor_finiteness_exact_counts_and_no_false_alarm():
    # large finite values whose sum overflows are accepted (the fast path only proves finiteness)
    check_tensor(torch.full((10,), 3e38), "x", "f")
    check_tensor(torch.full((4,), 60000.0, dtype=torch.float16), "x", "f")
    # bad values in several chunks are all counted, whatever their sign or kind
    x = torch.zeros(3 * (1 << 22) + 5)
    x[0], x[1 << 22], x[-1] = float("nan"), float("inf"), float("-inf")
    with pytest.raises(ValueError, match="3 NaN or infinite"):
        check_tensor(x.reshape(-1, 1), "x", "f")
    with pytest.raises(ValueError, match="2 NaN or infinite"):  # +inf and -inf sum to NaN: still caught
        check_tensor(torch.tensor([float("inf"), float("-inf"), 1.0]), "x", "f")
    check_tensor(torch.tensor([float("nan")]), "x", "f", finite=False)


def test_generators_are_deterministic_and_cpu():
    a = torch.rand(3, generator=check_generator(5, "f"))
    b = torch.rand(3, generator=check_generator(5, "f"))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(1)
    assert check_generator(g, "f") is g
    state = torch.random.get_rng_state()
    check_generator(None, "f")
    assert torch.equal(state, torch.random.get_rng_state())  # None never touches the global RNG


# --- types ----------------------------------------------------------------------------------


def test_result_types_are_frozen():
    s = Selection(indices=torch.tensor([2, 0]), weights=torch.ones(2), method="x")
    assert len(s) == 2 and s.scores is None and s.info == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.method = "y"
    syn = SyntheticSet(x=torch.zeros(3, 1, 8, 8), y=torch.tensor([0, 1, 2]))
    assert len(syn) == 3 and syn.lr is None and syn.history == []


# --- models ---------------------------------------------------------------------------------


def test_convnet_parameter_count_and_padding():
    net = ConvNet(1, 10, im_size=28, generator=0)
    assert sum(p.numel() for p in net.parameters()) == 317_706
    assert net.feature_dim == 2048  # 28 padded to 32, then three 2x pools: 128 * 4 * 4
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    # CIFAR-sized ConvNet-3 of the papers: 320,010 parameters
    assert sum(p.numel() for p in ConvNet(3, 10, im_size=32, generator=0).parameters()) == 320_010
    norms = [type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__]
    assert norms == ["GroupNorm"] * 3
    assert all(m.num_groups == m.num_channels for m in net.modules() if isinstance(m, torch.nn.GroupNorm))


def test_convnet_wrong_shape_is_a_clear_error():
    net = ConvNet(1, 10, im_size=28, generator=0)
    with pytest.raises(ValueError, match=r"shape \(n, 1, 28, 28\)"):
        net(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="'norm' parameter of ConvNet"):
        ConvNet(1, 10, norm="layer")


def test_models_are_seeded_by_generator_and_leave_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    a = ConvNet(1, 10, width=8, generator=3)
    b = MLP(64, 10, generator=3)
    t = TwoLayerNet(5, 8, generator=3)
    assert torch.equal(torch.rand(1), expected)
    a2 = ConvNet(1, 10, width=8, generator=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), a2.parameters()))
    c = ConvNet(1, 10, width=8, generator=4)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert b(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert t.W.shape == (8, 5)


def test_default_init_distribution_matches_pytorch():
    # Linear(in=400): PyTorch's default draws U(-1/20, 1/20)
    w = MLP(400, 10, hidden=(1000,), generator=0).body[1].weight.detach()
    assert float(w.abs().max()) <= 1 / 20 + 1e-7
    assert abs(float(w.std()) - (1 / 20) / math.sqrt(3)) < 1e-3


def test_two_layer_symmetric_init_outputs_zero():
    net = TwoLayerNet(10, 16, generator=0)
    assert torch.allclose(net(torch.randn(7, 10)), torch.zeros(7), atol=1e-6)
    with pytest.raises(ValueError, match="'width' parameter of TwoLayerNet must be an even int"):
        TwoLayerNet(10, 15)


# --- training and evaluation ----------------------------------------------------------------


def _blobs(n=200, generator=0):
    g = torch.Generator().manual_seed(generator)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5 + (y.float() * 2 - 1).unsqueeze(1) * torch.tensor([2.0, 0.0])
    return x, y


def test_training_learns_a_separable_problem_and_is_deterministic():
    x, y = _blobs()
    make = lambda generator: MLP(2, 2, hidden=(16,), generator=generator)  # noqa: E731
    m1 = train_model(make(0), x, y, epochs=30, batch_size=32, lr=0.1, generator=1)
    m2 = train_model(make(0), x, y, epochs=30, batch_size=32, lr=0.1, generator=1)
    assert accuracy(m1, x, y) > 0.97
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    r1 = evaluate_set(make, x, y, x, y, seeds=(0, 1), epochs=10, lr=0.1)
    r2 = evaluate_set(make, x, y, x, y, seeds=(0, 1), epochs=10, lr=0.1)
    assert r1.accuracies == r2.accuracies


def test_learning_rate_drops_half_way():
    x, y = _blobs(16)
    seen = []
    model = MLP(2, 2, hidden=(4,), generator=0)
    opt_lrs = []

    def callback(epoch, m):
        seen.append(epoch)

    train_model(model, x, y, epochs=4, callback=callback, generator=0)
    assert seen == [0, 1, 2, 3]
    # re-run the schedule by hand: lr is 0.01 for epochs 0-1 and 0.001 for 2-3
    import distillkit.train as T

    original = torch.optim.SGD

    class Spy(original):
        def step(self, *a, **k):
            opt_lrs.append(self.param_groups[0]["lr"])
            return super().step(*a, **k)

    T.torch.optim.SGD = Spy
    try:
        train_model(MLP(2, 2, hidden=(4,), generator=0), x, y, epochs=4, generator=0)
    finally:
        T.torch.optim.SGD = original
    assert [round(v, 6) for v in opt_lrs] == [0.01, 0.01, 0.001, 0.001]


def test_weights_change_training_and_are_scale_free():
    x, y = _blobs(40)
    w = torch.linspace(0.1, 2.0, 40)
    make = lambda: MLP(2, 2, hidden=(8,), generator=0)  # noqa: E731
    a = train_model(make(), x, y, weights=w, epochs=3, generator=0)
    b = train_model(make(), x, y, weights=3 * w, epochs=3, generator=0)
    c = train_model(make(), x, y, epochs=3, generator=0)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("bad", [torch.tensor([[0.5, 0.6], [0.5, 0.5]]), torch.tensor([[1.5, -0.5], [0.5, 0.5]])])
def test_soft_labels_must_be_distributions(bad):
    with pytest.raises(ValueError, match="'y' parameter of train_model must be soft labels whose rows are distributions"):
        train_model(MLP(2, 2, hidden=(8,), generator=0), torch.zeros(2, 2), bad, epochs=1, generator=0)


def test_soft_labels_train():
    x, y = _blobs(40)
    soft = torch.nn.functional.one_hot(y, 2).float()
    m_soft = train_model(MLP(2, 2, hidden=(8,), generator=0), x, soft, epochs=3, generator=0)
    m_hard = train_model(MLP(2, 2, hidden=(8,), generator=0), x, y, epochs=3, generator=0)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(m_soft.parameters(), m_hard.parameters()))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(epochs=0), ValueError, "'epochs' parameter of train_model"),
        (dict(lr=0.0), ValueError, "'lr' parameter of train_model"),
        (dict(momentum=1.0), ValueError, "'momentum' parameter"),
        (dict(batch_size=0), ValueError, "'batch_size' parameter"),
        (dict(weights=torch.ones(3)), ValueError, "'weights' parameter of train_model must be a tensor with one weight"),
        (dict(weights=-torch.ones(40)), ValueError, "non-negative with a positive sum"),
    ],
)
def test_train_bad_input(kwargs, error, match):
    x, y = _blobs(40)
    with pytest.raises(error, match=match):
        train_model(MLP(2, 2, hidden=(4,), generator=0), x, y, **kwargs)


def test_train_rejects_non_module():
    x, y = _blobs(4)
    with pytest.raises(TypeError, match="'model' parameter of train_model must be an nn.Module"):
        train_model(lambda t: t, x, y)


def test_eval_result_statistics():
    r = EvalResult((0.5, 0.7, 0.9), (0, 1, 2))
    assert r.mean == pytest.approx(0.7) and r.std == pytest.approx(0.2)
    assert str(r) == "70.0 ± 20.0"
    assert EvalResult((0.8,), (0,)).std == 0.0


def test_same_seed_same_trained_accuracy_on_real_data():
    quick = DIGITS.variant("digits-15-epochs", "a unit test must run in seconds", epochs=15, steps=None)
    x, y, *_ = quick.data()
    idx = torch.arange(0, x.shape[0], 21)
    a = quick.evaluate(x[idx], y[idx], seeds=(0, 1))
    b = quick.evaluate(x[idx], y[idx], seeds=(0, 1))
    assert a.accuracies == b.accuracies
    assert a.accuracies[0] != a.accuracies[1] or a.accuracies[0] > 0.5
    assert a.protocol["width"] == 32 and PAPER.width == 128


def test_seed_everything_is_reproducible():
    seed_everything(3)
    a = torch.rand(2)
    seed_everything(3)
    assert torch.equal(a, torch.rand(2))
    with pytest.raises(ValueError, match="'seed' parameter of seed_everything"):
        seed_everything(-1)


# --- plots and widgets ----------------------------------------------------------------------


def test_plots_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distillkit.plots import accuracy_curve, image_grid, selection_scatter

    ax = image_grid(torch.rand(12, 1, 8, 8), nrow=4, labels=list(range(12)))
    assert ax.images and ax.images[0].get_array().shape == (3 * 9 + 1, 4 * 9 + 1)
    ax = accuracy_curve([1, 10], {"a": [EvalResult((0.5,), (0,)), EvalResult((0.9,), (0,))]}, full=0.99)
    assert len(ax.lines) == 2
    ax = selection_scatter(torch.randn(20, 2), torch.arange(20) % 2, [0, 3], weights=torch.tensor([1.0, 2.0]))
    assert len(ax.collections) == 3
    plt.close("all")


def test_frame_explorer_links_slider_to_frames():
    import ipywidgets as w

    from distillkit.widgets import frame_explorer

    box = frame_explorer(["<p>a</p>", "<p>b</p>", "<p>c</p>"], ["one", "two", "three"], description="k")
    (slider, names), stack = box.children[0].children, box.children[1]
    assert isinstance(slider, w.IntSlider) and slider.max == 2
    assert isinstance(stack, w.Stack) and len(stack.children) == 3
    # the link lives in the browser (jslink): check that a Link model ties the slider to the stack
    links = [v for v in w.Widget._active_widgets.values() if type(v).__name__ == "Link"]
    assert any(link.source == (slider, "value") and link.target == (stack, "selected_index") for link in links)
    assert any(link.source == (slider, "value") and link.target == (names, "selected_index") for link in links)
    with pytest.raises(ValueError, match="one label per frame"):
        frame_explorer(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="non-empty"):
        frame_explorer([])


def test_package_metadata():
    assert distillkit.__version__ == "0.1.0"


# --- coreset building blocks shared by every family -------------------------------------------


@pytest.mark.parametrize("make", [lambda: MLP(64, 10, hidden=(32,), generator=0),
                                  lambda: ConvNet(1, 10, im_size=8, width=8, generator=0)])
def test_gradient_embedding_equals_autograd(make):
    from distillkit.coresets import embed, gradient_embedding

    model = make()
    x, y = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 9, 3])
    g = gradient_embedding(model, x, y)
    assert embed(model, x).shape[1] * 10 + 10 == g.shape[1]
    for i in range(4):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        ref = torch.cat([model.classifier.weight.grad.flatten(), model.classifier.bias.grad])
        assert torch.allclose(ref, g[i], atol=1e-6)
    bias = gradient_embedding(model, x, y, kind="bias")
    assert torch.allclose(bias, g[:, -10:])


def test_class_budgets_exact_and_errors():
    from distillkit.coresets import class_budgets

    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    assert class_budgets(y, 10) == {0: 4, 1: 3, 2: 3}  # balanced: 3 each, the spare unit to the largest class
    assert class_budgets(y, 10, mode="proportional") == {0: 5, 1: 3, 2: 2}
    assert sum(class_budgets(y, 7, mode="proportional").values()) == 7
    with pytest.raises(ValueError, match="class 2 has 20 examples but its share is 25"):
        class_budgets(y, 75)


# --- issue 14: models -------------------------------------------------------------------------


def test_mlp_on_an_empty_batch_returns_an_empty_output():
    net = MLP(64, 10, hidden=(8,), generator=0)
    out = net(torch.zeros(0, 1, 8, 8))
    assert out.shape == (0, 10)
    assert net.embed(torch.zeros(0, 64)).shape == (0, 8)


def test_init_parameters_without_generator_leaves_global_rng_alone():
    from distillkit.models import init_parameters

    layer = torch.nn.Linear(50, 40)  # built before seeding: its default init draws from the global RNG
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    init_parameters(layer, None)
    assert torch.equal(torch.rand(3), expected)
    assert layer.weight.abs().max() <= 1 / 50**0.5 and layer.weight.std() > 0
    a = init_parameters(torch.nn.Linear(5, 4), 7).weight
    assert torch.equal(a, init_parameters(torch.nn.Linear(5, 4), torch.Generator().manual_seed(7)).weight)


def test_model_input_of_another_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match=r"'x' parameter of MLP.forward must be a tensor of the model's dtype"):
        MLP(4, 2, hidden=(3,), generator=0)(torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"'x' parameter of ConvNet.forward must be a tensor of the model's dtype"):
        ConvNet(1, 2, im_size=8, width=4, depth=1, generator=0)(torch.zeros(2, 1, 8, 8, dtype=torch.float16))
