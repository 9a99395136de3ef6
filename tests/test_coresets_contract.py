"""The contract every registered coreset method keeps (parametrised over the registry).

Budget respected exactly (per class and globally), unique in-range CPU int64 indices,
finite positive weights, same seed same output, inputs (and the model) not mutated,
float32 and float64, clear errors naming the parameter for every bad input, and CPU ==
CUDA when a GPU is there. Every method gets the same small trained MLP through
``model=`` (methods that do not need it may ignore it) on 300 digits.
"""

import copy

import pytest
import torch

from distillkit.coresets import METHODS, class_budgets, select
from distillkit.data import load_digits
from distillkit.models import MLP
from distillkit.train import train_model

EXPECTED = [
    "random", "herding", "kcenter", "least_confidence", "entropy", "margin", "forgetting", "sensitivity", "el2n",
    "grand", "deepfool", "cal", "craig", "gradmatch",
]
NAMES = sorted(METHODS)


@pytest.fixture(scope="module")
def data():
    """300 digits (30 per class) and an MLP trained briefly on them."""
    x, y = load_digits("train")
    keep = torch.cat([(y == c).nonzero().squeeze(1)[:30] for c in range(10)])
    x, y = x[keep].contiguous(), y[keep].contiguous()
    model = MLP(64, 10, hidden=(32,), generator=0)
    train_model(model, x, y, epochs=15, lr=0.05, batch_size=64, generator=0)
    return x, y, model


def run(name, x, y, budget, model, **options):
    return select(name, x, y, budget, model=model, **options)


def check_selection(sel, n, budget):
    assert isinstance(sel.indices, torch.Tensor) and isinstance(sel.weights, torch.Tensor)
    assert sel.indices.dtype == torch.int64 and sel.indices.device.type == "cpu"
    assert sel.indices.shape == (budget,)
    assert sel.indices.unique().numel() == budget
    assert int(sel.indices.min()) >= 0 and int(sel.indices.max()) < n
    assert sel.weights.shape == (budget,) and sel.weights.is_floating_point()
    assert bool(torch.isfinite(sel.weights).all()) and bool((sel.weights > 0).all())
    assert len(sel) == budget


def test_all_fourteen_methods_are_registered():
    missing = [m for m in EXPECTED if m not in METHODS]
    assert not missing, f"not registered yet: {missing}"


@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_budget_is_respected(name, per_class, data):
    x, y, model = data
    for budget in (1, 7, 20):
        sel = run(name, x, y, budget, model, per_class=per_class, generator=0)
        check_selection(sel, x.shape[0], budget)
        if per_class:
            counts = torch.bincount(y[sel.indices], minlength=10).tolist()
            assert counts == [class_budgets(y, budget).get(c, 0) for c in range(10)]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name, data):
    x, y, model = data
    a = run(name, x, y, 20, model, generator=3)
    b = run(name, x, y, 20, model, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.weights, b.weights)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_and_model_are_not_mutated(name, data):
    x, y, model = data
    x0, y0 = x.clone(), y.clone()
    features = x.flatten(1).clone() * 2.0
    f0 = features.clone()
    state = copy.deepcopy(model.state_dict())
    training = model.training
    run(name, x, y, 20, model, generator=0)
    if name == "deepfool":
        # DeepFool perturbs the model's inputs, so it refuses features beside a model
        # (they would be silently ignored); it must still leave the features untouched.
        with pytest.raises(ValueError, match="'features' parameter of deepfool"):
            run(name, x, y, 20, model, features=features, generator=0)
    else:
        run(name, x, y, 20, model, features=features, generator=0)
    assert torch.equal(x, x0) and torch.equal(y, y0) and torch.equal(features, f0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"{name} changed the model's {key}"
    assert model.training == training


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_float32_and_float64(name, dtype, data):
    x, y, model = data
    model = copy.deepcopy(model).to(dtype)
    sel = run(name, x.to(dtype), y, 20, model, generator=0)
    check_selection(sel, x.shape[0], 20)


def bad_inputs(x, y):
    """(description, arguments to change, error type, text the message must contain)."""
    nan_x = x.clone()
    nan_x[3, 0, 2, 2] = float("nan")
    inf_features = x.flatten(1).clone()
    inf_features[5, 1] = float("inf")
    small = torch.cat([(y == 0).nonzero().squeeze(1)[:1], (y != 0).nonzero().squeeze(1)])  # class 0 has 1 example
    return [
        ("y shorter than x", dict(y=y[:-1]), ValueError, "'y'"),
        ("float labels", dict(y=y.float()), TypeError, "'y'"),
        ("x not a tensor", dict(x=x.numpy()), TypeError, "'x'"),
        ("NaN in x", dict(x=nan_x), ValueError, "'x'"),
        ("inf in features", dict(features=inf_features), ValueError, "'features'"),
        ("features with the wrong number of rows", dict(features=inf_features[:10].nan_to_num()), ValueError,
         "'features'"),
        ("budget 0", dict(budget=0), ValueError, "'budget'"),
        ("budget > n", dict(budget=x.shape[0] + 1), ValueError, "'budget'"),
        ("float budget", dict(budget=2.5), TypeError, "'budget'"),
        ("class smaller than its budget", dict(x=x[small], y=y[small], budget=20), ValueError, "'budget'"),
        ("per_class not a bool", dict(per_class="yes"), TypeError, "'per_class'"),
        ("bad generator", dict(generator="seed"), TypeError, "'generator'"),
        ("unknown option", dict(bogus_option=1), TypeError, "bogus_option"),
    ]


CASES = [case[0] for case in bad_inputs(torch.zeros(20, 1, 8, 8), torch.arange(20) % 10)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_parameter(name, case, data):
    x, y, model = data
    _, change, error, match = next(c for c in bad_inputs(x, y) if c[0] == case)
    kwargs = dict(x=x, y=y, budget=20, model=model, generator=0) | change
    with pytest.raises(error, match=match):
        select(name, kwargs.pop("x"), kwargs.pop("y"), kwargs.pop("budget"), **kwargs)


def test_unknown_method_name():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="'method'"):
        select("no-such-method", x, y, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_cpu_equals_cuda(name, data):
    x, y, model = data
    x64, model64 = x.double(), copy.deepcopy(model).double()  # float64 so that rounding cannot flip a choice
    cpu = run(name, x64, y, 20, model64, generator=0)
    gpu = run(name, x64.cuda(), y.cuda(), 20, copy.deepcopy(model64).cuda(), generator=0)
    assert torch.equal(cpu.indices, gpu.indices)
    assert torch.allclose(cpu.weights, gpu.weights, rtol=1e-5)


def test_select_by_score_ranks_infinite_scores_and_rejects_nan():
    from distillkit.coresets import select_by_score

    s = torch.tensor([1.0, float("inf"), 0.5, float("-inf"), float("inf")])
    assert select_by_score(s, 3).tolist() == [1, 4, 0]  # ties between infinities by index
    assert select_by_score(s, 2, order="bottom").tolist() == [3, 2]
    y = torch.tensor([0, 0, 1, 1, 1])
    assert select_by_score(s, 2, y=y, order="bottom").tolist() == [3, 0]
    with pytest.raises(ValueError, match="'scores' parameter of select_by_score must be scores without NaN"):
        select_by_score(torch.tensor([1.0, float("nan")]), 1)
