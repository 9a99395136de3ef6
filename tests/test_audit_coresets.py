"""Audit sweep (issue 14) over distillkit.coresets: every registered method and the public helpers,
called with the bad inputs the audit found, must raise TypeError or ValueError in the library's one
message form, naming the public function the caller used and the parameter."""

import pytest
import torch
from torch import nn

from distillkit.coresets import (
    METHODS,
    cal_scores,
    class_budgets,
    cluster_sizes,
    craig_similarity,
    deepfool_scores,
    el2n_scores,
    embed,
    facility_location,
    gradient_embedding,
    grand_scores,
    importance_sample,
    knn,
    make_selection,
    predict_proba,
    resolve_features,
    select_by_score,
    sensitivity_scores,
    train_proxy,
)
from distillkit.models import MLP

N, D, C, BUDGET = 24, 4, 3, 6
FAST = {  # the cheapest valid options of each method (one proxy epoch)
    "least_confidence": {"proxy_epochs": 1}, "entropy": {"proxy_epochs": 1}, "margin": {"proxy_epochs": 1},
    "deepfool": {"proxy_epochs": 1}, "cal": {"proxy_epochs": 1, "k": 2}, "forgetting": {"epochs": 1},
    "el2n": {"epochs": 1}, "grand": {"epochs": 1},
}
PROXY = ["least_confidence", "entropy", "margin", "deepfool", "cal", "forgetting", "el2n", "grand"]
LABELS_INDEX_MODEL = ["craig", "gradmatch", "grand", "el2n", "forgetting"]  # y picks a column of model's output
TAKES_MODEL = sorted(set(METHODS) - {"random", "deepfool"})  # deepfool casts x to the model's dtype (supported)


def data(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=g, dtype=dtype), torch.arange(N) % C


def model3():
    return MLP(D, C, hidden=(8,), generator=0)


def expect_clear(call, func):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    text = str(info.value)
    assert f" parameter of {func} must be " in text, text


# ------------------------------------------------------------------ every registered method


def method_cases():
    cases = []
    for name in sorted(METHODS):
        cases += [(name, "meta_x"), (name, "x_0d"), (name, "x_1d"), (name, "x_float16"), (name, "progress")]
        if name in PROXY:
            cases.append((name, "label_1e9"))
        if name in LABELS_INDEX_MODEL:
            cases.append((name, "label_beyond_model"))
        if name in TAKES_MODEL:
            cases.append((name, "float64_x_float32_model"))
    return cases


@pytest.mark.parametrize("name,case", method_cases())
def test_method_refuses_bad_input_clearly(name, case):
    fn = METHODS[name]
    func = fn.__name__
    x, y = data()
    opts = dict(FAST.get(name, {}))
    if case == "meta_x":
        x = x.to("meta")
    elif case == "x_0d":
        x = torch.tensor(1.0)
    elif case == "x_1d":
        x = x[:, 0].contiguous()
    elif case == "x_float16":
        x = x.half()
    elif case == "progress":
        opts["progress"] = "yes"
    elif case == "label_1e9":
        y = y.clone()
        y[y == 1] = 10**9
        opts["per_class"] = False
    elif case == "label_beyond_model":
        y = y.clone()
        y[0] = C + 2
        opts.update(per_class=False, model=model3())
    elif case == "float64_x_float32_model":
        x = x.double()
        opts["model"] = model3()
    expect_clear(lambda: fn(x, y, BUDGET, **opts), func)


# ------------------------------------------------------------------ public helpers


def helper_cases():
    x, y = data()
    s = craig_similarity(x)
    probs = torch.full((N, C), 1.0 / C)
    lab = y.clone()
    lab[0] = C + 2
    y2 = torch.stack([y, y], 1)
    return [
        ("craig_similarity block=-1", lambda: craig_similarity(x, block=-1), "craig_similarity"),
        ("craig_similarity block=0", lambda: craig_similarity(x, block=0), "craig_similarity"),
        ("craig_similarity 1-D g", lambda: craig_similarity(x[:, 0]), "craig_similarity"),
        ("craig_similarity float16", lambda: craig_similarity(x.half()), "craig_similarity"),
        ("craig_similarity meta", lambda: craig_similarity(x.to("meta")), "craig_similarity"),
        ("craig_similarity NaN", lambda: craig_similarity(x.masked_fill(x > 1, float("nan"))), "craig_similarity"),
        ("cluster_sizes float indices", lambda: cluster_sizes(s, torch.tensor([0.7, 3.2])), "cluster_sizes"),
        ("cluster_sizes duplicates", lambda: cluster_sizes(s, torch.tensor([0, 3, 0])), "cluster_sizes"),
        ("cluster_sizes out of range", lambda: cluster_sizes(s, torch.tensor([0, N])), "cluster_sizes"),
        ("cluster_sizes negative", lambda: cluster_sizes(s, torch.tensor([0, -1])), "cluster_sizes"),
        ("cluster_sizes empty", lambda: cluster_sizes(s, torch.tensor([], dtype=torch.int64)), "cluster_sizes"),
        ("cluster_sizes non-square", lambda: cluster_sizes(s[:5], torch.tensor([0])), "cluster_sizes"),
        ("make_selection float indices", lambda: make_selection(torch.tensor([0.7, 3.2]), method="m"),
         "make_selection"),
        ("make_selection weights length", lambda: make_selection(torch.tensor([0, 3]), method="m",
                                                                  weights=torch.ones(3)), "make_selection"),
        ("make_selection negative", lambda: make_selection(torch.tensor([0, -3]), method="m"), "make_selection"),
        ("class_budgets float y", lambda: class_budgets(y.double(), 3), "class_budgets"),
        ("class_budgets 2-D y", lambda: class_budgets(y2, 3), "class_budgets"),
        ("class_budgets negative y", lambda: class_budgets(y - 1, 3), "class_budgets"),
        ("class_budgets empty y", lambda: class_budgets(torch.tensor([], dtype=torch.int64), 1), "class_budgets"),
        ("class_budgets meta y", lambda: class_budgets(y.to("meta"), 3), "class_budgets"),
        ("select_by_score float y", lambda: select_by_score(probs[:, 0], 3, y=y.double()), "select_by_score"),
        ("select_by_score 2-D y", lambda: select_by_score(probs[:, 0], 3, y=y2), "select_by_score"),
        ("select_by_score negative y", lambda: select_by_score(probs[:, 0], 3, y=y - 1), "select_by_score"),
        ("select_by_score per_class", lambda: select_by_score(probs[:, 0], 3, y=y, per_class="no"),
         "select_by_score"),
        ("select_by_score meta", lambda: select_by_score(probs[:, 0].to("meta"), 3), "select_by_score"),
        ("embed head declared first", lambda: embed(HeadFirstNoOutput(), x), "embed"),
        ("embed meta x", lambda: embed(model3(), x.to("meta")), "embed"),
        ("embed 0-D x", lambda: embed(model3(), torch.tensor(1.0)), "embed"),
        ("embed float64 x, float32 model", lambda: embed(model3(), x.double()), "embed"),
        ("embed not a model", lambda: embed("mlp", x), "embed"),
        ("gradient_embedding label beyond", lambda: gradient_embedding(model3(), x, lab), "gradient_embedding"),
        ("gradient_embedding y length", lambda: gradient_embedding(model3(), x, y[:5]), "gradient_embedding"),
        ("gradient_embedding float64 x", lambda: gradient_embedding(model3(), x.double(), y), "gradient_embedding"),
        ("gradient_embedding meta x", lambda: gradient_embedding(model3(), x.to("meta"), y), "gradient_embedding"),
        ("resolve_features kind", lambda: resolve_features(x, None, model3(), "resolve_features", kind="grad"),
         "resolve_features"),
        ("predict_proba float64 x", lambda: predict_proba(model3(), x.double()), "predict_proba"),
        ("predict_proba meta x", lambda: predict_proba(model3(), x.to("meta")), "predict_proba"),
        ("predict_proba 0-D x", lambda: predict_proba(model3(), torch.tensor(1.0)), "predict_proba"),
        ("train_proxy label 1e9", lambda: train_proxy(x, y * 10**9, epochs=0), "train_proxy"),
        ("train_proxy float16", lambda: train_proxy(x.half(), y, epochs=1), "train_proxy"),
        ("grand_scores label beyond", lambda: grand_scores(model3(), x, lab), "grand_scores"),
        ("grand_scores float64 x", lambda: grand_scores(model3(), x.double(), y), "grand_scores"),
        ("el2n_scores meta", lambda: el2n_scores(probs.to("meta"), y), "el2n_scores"),
        ("deepfool_scores meta", lambda: deepfool_scores(model3(), x.to("meta")), "deepfool_scores"),
        ("deepfool_scores 0-D", lambda: deepfool_scores(model3(), torch.tensor(1.0)), "deepfool_scores"),
        ("knn float16", lambda: knn(x.half(), 2), "knn"),
        ("knn meta", lambda: knn(x.to("meta"), 2), "knn"),
        ("cal_scores float16", lambda: cal_scores(probs.half(), x.half(), k=2), "cal_scores"),
        ("sensitivity_scores meta", lambda: sensitivity_scores(x.to("meta")), "sensitivity_scores"),
        ("sensitivity_scores float16", lambda: sensitivity_scores(x.half()), "sensitivity_scores"),
        ("importance_sample meta", lambda: importance_sample(probs[:, 0].to("meta"), 2), "importance_sample"),
        ("facility_location float16", lambda: facility_location(s.half(), 2), "facility_location"),
        ("facility_location meta", lambda: facility_location(s.to("meta"), 2), "facility_location"),
    ]


class HeadFirstNoOutput(nn.Module):
    """Declares its head first and applies a non-linear map after it: no linear output layer."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, C)
        self.body = nn.Linear(D, 8)

    def forward(self, x):
        return torch.tanh(self.head(torch.relu(self.body(x)))) * 2


HELPERS = helper_cases()


@pytest.mark.parametrize("label,call,func", HELPERS, ids=[h[0] for h in HELPERS])
def test_helper_refuses_bad_input_clearly(label, call, func):
    expect_clear(call, func)


# ------------------------------------------------------------------ item 1: the head comes from the forward pass


class HeadFirst(nn.Module):
    """An MLP that declares its output layer before its body (and names it `out`, not `classifier`)."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(8, C)
        self.body = nn.Sequential(nn.Linear(D, 8), nn.ReLU())

    def forward(self, x):
        return self.out(self.body(x))


def test_embed_and_gradient_embedding_find_a_head_declared_first():
    torch.manual_seed(0)  # nn.Linear's default init (test-only global RNG)
    model = HeadFirst()
    x, y = data()
    h = model.body(x).detach()  # (n, 8): the true penultimate features
    torch.testing.assert_close(embed(model, x), h, rtol=0, atol=0)
    p = torch.softmax(model.out(h), 1).detach()
    delta = p - nn.functional.one_hot(y, C)
    expected = torch.cat([(delta[:, :, None] * h[:, None, :]).flatten(1), delta], 1)  # (n, C * 8 + C)
    g = gradient_embedding(model, x, y)
    assert g.shape == (N, C * 9)
    torch.testing.assert_close(g, expected, rtol=1e-6, atol=1e-6)


def test_methods_with_model_use_the_forward_head():
    torch.manual_seed(0)
    model = HeadFirst()
    x, y = data()
    h = model.body(x).detach()
    assert torch.equal(METHODS["herding"](x, y, BUDGET, model=model).indices,
                       METHODS["herding"](x, y, BUDGET, features=h).indices)
    assert METHODS["craig"](x, y, BUDGET, model=model).info["feature_dim"] == C * 9


def test_a_model_whose_output_is_not_a_linear_layer_is_refused():
    with pytest.raises(ValueError, match="parameter of herding must be a classifier whose output is the output"):
        METHODS["herding"](*data(), BUDGET, model=HeadFirstNoOutput())
    with pytest.raises(TypeError, match="parameter of embed must be .* Got a model that runs no nn.Linear"):
        embed(nn.Sequential(nn.Flatten(), nn.Tanh()), data()[0])


# ------------------------------------------------------------------ item 7: offset and scale invariance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["herding", "kcenter", "craig"])
@pytest.mark.parametrize("transform", ["scale 1e20", "scale 1e-30", "offset 1e4"])
def test_picks_do_not_depend_on_scale_or_offset(name, transform, dtype):
    g = torch.Generator().manual_seed(3)
    f = torch.randn(60, 5, generator=g, dtype=dtype)
    y = torch.arange(60) % 2
    kind, value = transform.split()
    moved = f * float(value) if kind == "scale" else f + float(value)
    ref = METHODS[name](f, y, 10, generator=0)
    sel = METHODS[name](moved, y, 10, generator=0)
    assert sel.indices.tolist() == ref.indices.tolist()
    if kind == "scale":  # gains come back in the units of the features
        torch.testing.assert_close(sel.gains / float(value), ref.gains, rtol=1e-5, atol=0)


def test_craig_similarity_keeps_the_units_of_g():
    g = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    for scale in (1.0, 1e20, 1e-30):
        torch.testing.assert_close(craig_similarity(g * scale) / scale, craig_similarity(g), rtol=1e-12, atol=0)


# ------------------------------------------------------------------ item 8 and the CAL option


def test_cluster_sizes_and_make_selection_accept_lists_of_ints():
    s = craig_similarity(torch.tensor([[0.0], [1.0], [3.0]]))
    assert cluster_sizes(s, [0, 2]).tolist() == [2.0, 1.0]
    assert make_selection([2, 0], method="m", weights=[0.5, 1.5]).weights.tolist() == [0.5, 1.5]


def test_cal_normalize_option_uses_cosine_neighbours():
    # points 0 and 1 are close in angle but far apart; point 2 is close to 0 in distance, not in angle
    f = torch.tensor([[1.0, 0.0], [10.0, 0.5], [0.0, 1.2]])
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
    raw = cal_scores(probs, f, k=1)
    cos = cal_scores(probs, f, k=1, normalize=True)
    assert knn(f, 1)[1][0].item() == 2 and raw[0].item() == 0.0  # Euclidean neighbour agrees
    assert cos[0].item() > 1.0  # cosine neighbour (point 1) disagrees
    x, y = f, torch.tensor([0, 1, 0])
    assert METHODS["cal"](x, y, 1, probs=probs, k=1, per_class=False, normalize=True).info["normalize"] is True
