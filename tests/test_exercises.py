"""The exercise checks: the chapters' own solutions pass, typical mistakes get the hint that
names them, the stub is "not done yet", and no candidate can make a check raise."""

import ast
import json
import math
import pathlib
import re
import sys

import pytest
import torch
import torch.nn.functional as F

import distillkit.coresets
import distillkit.distill
import distillkit.robust
import distillkit.theory
from distillkit import exercises
from distillkit.coresets import class_budgets, entropy_scores, knn, select_by_score

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def chapter_solution(name, fallback=None):
    """The function ``name`` as the chapter's solution cell defines it, with the library in scope
    (``fallback`` while the chapter is not there)."""
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code" or "solution" not in cell["metadata"].get("tags", []):
                continue
            src = "".join(cell["source"])
            for node in ast.parse(src).body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    scope = {"torch": torch, "F": F, "math": math}
                    for module in (distillkit.coresets, distillkit.distill, distillkit.robust, distillkit.theory):
                        scope.update({n: getattr(module, n) for n in module.__all__})
                    exec(ast.get_source_segment(src, node), scope)  # noqa: S102 - our own chapter's code
                    return scope[name]
    if fallback is None:
        raise LookupError(name)
    return fallback


# The two coding exercises whose solutions are written inline (no function): the chapter's
# logic, wrapped in the stub's signature. One copy, in the nbgrader course tool, which puts
# them into the course's solution cells; defined here from that source.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from nbgrader_course import INLINE_REFERENCE  # noqa: E402

_inline = {"torch": torch}
for _source in INLINE_REFERENCE.values():
    exec(_source, _inline)  # noqa: S102 (the project's own reference code)
craig_weights, two_layer_loss = _inline["craig_weights"], _inline["two_layer_loss"]


def jaccard_matrix(selections):  # used only while the comparison chapter is missing
    sets = [set(s.tolist()) for s in selections]
    return torch.tensor([[len(a & b) / len(a | b) if a | b else 1.0 for b in sets] for a in sets], dtype=torch.float64)


CORRECT = {
    "ex-measuring-2": lambda: chapter_solution("bootstrap_interval"),
    "ex-template-2": lambda: chapter_solution("count_per_class"),
    "ex-geometric-2": lambda: chapter_solution("welling_herding"),
    "ex-uncertainty-2": lambda: chapter_solution("pooled_entropy"),
    "ex-error-loss-2": lambda: chapter_solution("lightweight_scores"),
    "ex-boundary-2": lambda: chapter_solution("cal_aggregate"),
    "ex-gradient-2": lambda: craig_weights,
    "ex-matching-2": lambda: chapter_solution("dm_loss_one_forward"),
    "ex-unrolled-2": lambda: chapter_solution("kip_label_gradient"),
    "ex-robust-2": lambda: chapter_solution("voronoi_from_scratch"),
    "ex-multiindex-2": lambda: two_layer_loss,
    "ex-comparison-2": lambda: chapter_solution("jaccard_matrix", jaccard_matrix),
}


def run(label, fn, capsys):
    result = exercises.CHECKS[label](fn)
    printed = capsys.readouterr().out
    assert printed.strip() == result.message
    return result


def test_every_check_is_registered_and_exported():
    assert set(CORRECT) == set(exercises.CHECKS)
    for label, check in exercises.CHECKS.items():
        assert check.exercise == label and check.__name__ == f"check_{check.function}"
        assert check.__name__ in exercises.__all__ and getattr(exercises, check.__name__) is check


@pytest.mark.parametrize("label", sorted(CORRECT))
def test_the_chapter_solution_passes(label, capsys):
    result = run(label, CORRECT[label](), capsys)
    assert result and result.status == "correct", result.message
    assert result.message.startswith("Correct: ") and "\n" not in result.message and result.hint == ""


@pytest.mark.parametrize("label", sorted(CORRECT))
def test_the_stub_is_not_done_yet(label, capsys):
    name = exercises.CHECKS[label].function

    def stub(*args):
        raise NotImplementedError  # your code here

    result = run(label, stub, capsys)
    assert not result and result.status == "not done"
    assert result.message.startswith(f"Not done yet: {name} still raises NotImplementedError")


def _crash(*args):
    raise RuntimeError("index 7 is out of bounds")


def _exit(*args):
    raise SystemExit(1)


def _draws_globally(*args):
    torch.rand(3)  # global RNG
    return "nonsense"


@pytest.mark.parametrize("label", sorted(CORRECT))
@pytest.mark.parametrize("candidate", [_crash, _exit, _draws_globally, lambda *a: None, lambda *a: float("nan"),
                                       lambda *a: torch.full((3, 3), float("nan")), lambda *a: [[1, 2], [3]],
                                       lambda *a: (torch.zeros(2), "x"), 42],
                         ids=["raises", "exits", "nonsense", "none", "nan", "nan-tensor", "ragged", "pair", "not-callable"])
def test_a_check_never_raises_and_leaves_the_global_rng(label, candidate, capsys):
    state = torch.random.get_rng_state()
    result = run(label, candidate, capsys)
    assert not result and result.status == "wrong"
    assert result.message.startswith("Not quite: ") and result.hint
    assert torch.equal(torch.random.get_rng_state(), state)
    if candidate is _crash:
        assert "raised RuntimeError" in result.message and "index 7 is out of bounds" in result.message
    if candidate == 42:
        assert f"check_{exercises.CHECKS[label].function}(" in result.hint


def test_a_result_shows_nothing_more_in_a_notebook(capsys):
    result = run("ex-template-2", CORRECT["ex-template-2"](), capsys)
    assert result._ipython_display_() is None and "correct" in repr(result)


# ---------------------------------------------------------------- typical mistakes, per exercise
def _boot(mode):
    def bootstrap_interval(accuracies, n_boot=2000, generator=None):
        a = torch.as_tensor(accuracies, dtype=torch.float64)
        idx = torch.randint(len(a), (n_boot, len(a)), generator=None if mode == "global" else generator)
        means = a[idx].mean(0 if mode == "axis" else 1)
        if mode == "data":
            means = a[idx].flatten()
        if mode == "perm":
            means = torch.stack([a[torch.randperm(len(a), generator=generator)].mean() for _ in range(n_boot)])
        if mode == "se":
            return (a.mean() - 1.96 * means.std()).item(), (a.mean() + 1.96 * means.std()).item()
        tail = 0.05 if mode == "90" else 0.025
        low, high = means.quantile(tail).item(), means.quantile(1 - tail).item()
        return {"swap": (high, low), "percent": (100 * low, 100 * high)}.get(mode, (low, high))
    return bootstrap_interval


def _count(mode):
    return {"no-minlength": lambda indices, y: torch.bincount(y[indices]),
            "indices": lambda indices, y: torch.bincount(indices),
            "all": lambda indices, y: torch.bincount(y, minlength=int(y.max()) + 1)}[mode]


def _welling(mode):
    def welling_herding(h, k):
        mu = h.mean(0)
        w, chosen = (torch.zeros_like(mu) if mode == "zero" else mu.clone()), []
        for _ in range(k):
            score = h @ w
            if mode != "repeat":
                score[chosen] = float("inf") if mode == "argmin" else -float("inf")
            i = int(score.argmin() if mode == "argmin" else score.argmax())
            chosen.append(i)
            w = w - mu + h[i] if mode == "sign" else w + mu - h[i]
        if mode == "float":
            return torch.tensor(chosen, dtype=torch.float32)
        return sorted(chosen) if mode == "sorted" else chosen
    return welling_herding


def _pooled(mode):
    def pooled_entropy(x, y, budget, probs, factor, generator):
        g = torch.Generator().manual_seed(generator)
        scores, keep = entropy_scores(probs), []
        if mode == "global-pool":
            pool = torch.randperm(len(y), generator=g)[: factor * budget]
            return pool[select_by_score(scores[pool], budget)]
        for c, k in class_budgets(y, budget).items():
            members = (y == c).nonzero().squeeze(1)
            if mode == "no-pool":
                pool = members
            elif mode == "with-replacement":
                pool = members[torch.randint(len(members), (factor * k,), generator=g)]
            else:
                order = torch.randperm(len(members)) if mode == "global-rng" else torch.randperm(len(members), generator=g)
                pool = members[order[: factor * k]]
            keep.append(pool[select_by_score(scores[pool], k, order="bottom" if mode == "least" else "top")])
        return torch.cat(keep)
    return pooled_entropy


def _light(mode):
    def lightweight_scores(features):
        d = features if mode == "origin" else features - features.mean(0)
        d2 = d.norm(dim=1) if mode == "not-squared" else d.pow(2).sum(1)
        q = (1.0 if mode == "no-half" else 0.5) * d2 / d2.sum() + (0.0 if mode == "no-uniform" else 0.5 / len(features))
        return {"column": q[:, None], "float32": q.float()}.get(mode, q)
    return lightweight_scores


def _cal(mode):
    def cal_aggregate(probs, features, k, how, eps=1e-12):
        nb = torch.cdist(features, features).topk(k, largest=False).indices if mode == "self" else knn(features, k)[1]
        p = probs if mode == "no-clamp" else probs.clamp(eps, 1.0)
        if mode == "reverse":
            kl = (p[:, None] * (p.log()[:, None] - p[nb].log())).sum(2)
        else:
            kl = (p[nb] * (p[nb].log() - p.log()[:, None])).sum(2)  # (n, k)
        if how == "mean":
            return kl.sum(1) if mode == "sum" else kl.mean(1)
        if mode == "swap":
            how = "median" if how == "max" else "max"
        if mode == "pair":
            return kl.max(1) if how == "max" else kl.median(1)
        return kl.max(1).values if how == "max" else kl.median(1).values
    return cal_aggregate


def _craig(mode):
    def weights(features, y, indices):
        if mode == "any-class":
            nearest = torch.cdist(features, features[indices]).argmin(1)
            return torch.bincount(nearest, minlength=len(indices)).float()
        if mode == "class-order":
            return torch.cat([torch.bincount(torch.cdist(features[y == c], features[indices[y[indices] == c]]).argmin(1),
                                             minlength=int((y[indices] == c).sum())).float() for c in y.unique()])
        w = craig_weights(features, y, indices)
        return {"no-self": w - 1, "fraction": w / w.sum()}[mode]
    return weights


def _dm(mode):
    def dm_loss_one_forward(net, real_batches, x_syn, y_syn):
        if mode == "per-class":
            return sum(((net.embed(b).mean(0).detach() - net.embed(x_syn[y_syn == c]).mean(0)) ** 2).sum()
                       for c, b in enumerate(real_batches))
        embed = net if mode == "logits" else net.embed
        with torch.no_grad():
            f_real = embed(torch.cat(real_batches))
        f_syn = embed(x_syn).detach() if mode == "detached" else embed(x_syn)
        mu_real = torch.stack([f.mean(0) for f in torch.split(f_real, [len(b) for b in real_batches])])
        if mode == "pooled":
            mu_real = f_real.mean(0).expand(len(real_batches), -1)
        mu_syn = torch.stack([f_syn[y_syn == c].mean(0) for c in range(len(real_batches))])
        if mode == "sorted":
            mu_syn = f_syn.reshape(len(real_batches), -1, f_syn.shape[1]).mean(1)
        return ((mu_real - mu_syn) ** 2).mean() if mode == "mean" else ((mu_real - mu_syn) ** 2).sum()
    return dm_loss_one_forward


def _kip(mode):
    def kip_label_gradient(kernel, x_s, y_s, x_t, y_t, reg=1e-6):
        k_ss = kernel(x_s, x_s)
        lam = reg if mode == "unscaled-reg" else reg * k_ss.trace() / len(x_s)
        a = kernel(x_t, x_s) @ torch.linalg.inv(k_ss + lam * torch.eye(len(x_s), dtype=k_ss.dtype))
        residual = a @ y_s - y_t
        scale = {"sum": 1.0, "rows": len(residual), "double": residual.numel() / 2}.get(mode, residual.numel())
        return (-1 if mode == "sign" else 1) * (a @ residual if mode == "no-transpose" else a.T @ residual) / scale
    return kip_label_gradient


def _voronoi(mode):
    def voronoi_from_scratch(f_real, y_real, f_syn, y_syn):
        out = []
        for f, c in zip(f_real, y_real):
            candidates = torch.arange(len(f_syn)) if mode == "any-class" else (y_syn == c).nonzero().squeeze(1)
            dist = ((f_syn[candidates] - f) ** 2).sum(1)
            j = int(dist.argmax() if mode == "farthest" else dist.argmin())
            out.append(j if mode == "local" else int(candidates[j]))
        return torch.tensor(out)
    return voronoi_from_scratch


def _two_layer(mode):
    def two_layer_loss(net, x, y):
        z = x @ (net.W if mode == "no-transpose" else net.W.T) + (0.0 if mode == "no-bias" else net.b)
        err = ((z if mode == "no-relu" else torch.relu(z)) @ net.a - y) ** 2
        loss = {"no-half": err.mean(), "sum": 0.5 * err.sum()}.get(mode, 0.5 * err.mean())
        return loss.detach() if mode == "detached" else loss
    return two_layer_loss


def _jaccard(mode):
    def jaccard_matrix(selections):
        sets = [set(s.tolist()) for s in selections]
        out = torch.zeros(len(sets), len(sets), dtype=torch.float32 if mode == "float32" else torch.float64)
        for i, a in enumerate(sets):
            for j, b in enumerate(sets):
                below = {"smaller": min(len(a), len(b)), "sum": len(a) + len(b)}.get(mode, len(a | b))
                if mode == "nan" or below:
                    out[i, j] = len(a & b) / below if below else float("nan")
                elif mode != "zero-empty":
                    out[i, j] = 1.0
        return out.tolist() if mode == "list" else out
    return jaccard_matrix


MISTAKES = [
    ("ex-comparison-2", _jaccard("smaller"), "not by the size of the smaller selection"),
    ("ex-comparison-2", _jaccard("sum"), "counts shared indices once"),
    ("ex-comparison-2", _jaccard("nan"), "count them as identical"),
    ("ex-comparison-2", _jaccard("zero-empty"), "overlaps itself completely"),
    ("ex-comparison-2", _jaccard("float32"), "dtype=torch.float64"),
    ("ex-comparison-2", _jaccard("list"), "not a tensor"),
    ("ex-measuring-2", _boot("data"), "not of the accuracies themselves"),
    ("ex-measuring-2", _boot("90"), "quantiles 0.025 and 0.975"),
    ("ex-measuring-2", _boot("perm"), "with* replacement"),
    ("ex-measuring-2", _boot("global"), "from `generator`"),
    ("ex-measuring-2", _boot("se"), "not mean +- 1.96 standard errors"),
    ("ex-measuring-2", _boot("axis"), "averaged over its own values"),
    ("ex-measuring-2", _boot("swap"), "in that order"),
    ("ex-measuring-2", _boot("percent"), "do not multiply by 100"),
    ("ex-template-2", _count("no-minlength"), "minlength"),
    ("ex-template-2", _count("indices"), "not the indices"),
    ("ex-template-2", _count("all"), "only the labels of the selected examples"),
    ("ex-geometric-2", _welling("argmin"), "argmax of w_t . h_i, not the argmin"),
    ("ex-geometric-2", _welling("zero"), "start from w_0 = mu"),
    ("ex-geometric-2", _welling("sign"), "adds the mean and subtracts the chosen feature"),
    ("ex-geometric-2", _welling("repeat"), "exclude chosen examples"),
    ("ex-geometric-2", _welling("sorted"), "in pick order"),
    ("ex-geometric-2", _welling("float"), "indices are integers"),
    ("ex-uncertainty-2", _pooled("least"), "keep the highest entropies"),
    ("ex-uncertainty-2", _pooled("global-pool"), "*within each class*"),
    ("ex-uncertainty-2", _pooled("global-rng"), "seeded with `generator`"),
    ("ex-uncertainty-2", _pooled("no-pool"), "at random before ranking"),
    ("ex-uncertainty-2", _pooled("with-replacement"), "without replacement"),
    ("ex-error-loss-2", _light("no-uniform"), "half uniform, 1/(2n)"),
    ("ex-error-loss-2", _light("no-half"), "both halves carry a factor 1/2"),
    ("ex-error-loss-2", _light("not-squared"), "squared distance"),
    ("ex-error-loss-2", _light("origin"), "from the data mean"),
    ("ex-error-loss-2", _light("column"), "squeeze or reshape"),
    ("ex-error-loss-2", _light("float32"), "dtype of the inputs"),
    ("ex-boundary-2", _cal("reverse"), "KL(p_neighbour || p_point)"),
    ("ex-boundary-2", _cal("self"), "not its own neighbour"),
    ("ex-boundary-2", _cal("sum"), "you summed them"),
    ("ex-boundary-2", _cal("swap"), "swapped"),
    ("ex-boundary-2", _cal("pair"), "take `.values`"),
    ("ex-boundary-2", _cal("no-clamp"), "clip the probabilities"),
    ("ex-gradient-2", _craig("any-class"), "of its own class"),
    ("ex-gradient-2", _craig("no-self"), "in its own cluster"),
    ("ex-gradient-2", _craig("fraction"), "not a fraction"),
    ("ex-gradient-2", _craig("class-order"), "in the order of `indices`"),
    ("ex-matching-2", _dm("per-class"), "embed them once"),
    ("ex-matching-2", _dm("logits"), "use net.embed"),
    ("ex-matching-2", _dm("detached"), "must stay in the graph"),
    ("ex-matching-2", _dm("pooled"), "each class's real embeddings separately"),
    ("ex-matching-2", _dm("sorted"), "do not assume they are sorted"),
    ("ex-matching-2", _dm("mean"), "do not average them"),
    ("ex-unrolled-2", _kip("unscaled-reg"), "tr(K_SS) / n_s"),
    ("ex-unrolled-2", _kip("sign"), "prediction minus target"),
    ("ex-unrolled-2", _kip("sum"), "divide by the number of entries"),
    ("ex-unrolled-2", _kip("rows"), "not only over the n_t rows"),
    ("ex-unrolled-2", _kip("double"), "factor 1/2"),
    ("ex-unrolled-2", _kip("no-transpose"), "the gradient (n_s, C)"),
    ("ex-robust-2", _voronoi("any-class"), "own class are candidates"),
    ("ex-robust-2", _voronoi("local"), "a global index"),
    ("ex-robust-2", _voronoi("farthest"), "*nearest* synthetic point"),
    ("ex-multiindex-2", _two_layer("no-half"), "a factor 1/2 in front of the mean"),
    ("ex-multiindex-2", _two_layer("sum"), "you summed them"),
    ("ex-multiindex-2", _two_layer("no-bias"), "the first layer has a bias"),
    ("ex-multiindex-2", _two_layer("no-relu"), "apply the ReLU"),
    ("ex-multiindex-2", _two_layer("no-transpose"), "x @ W.T + b"),
    ("ex-multiindex-2", _two_layer("detached"), "without detaching"),
]


@pytest.mark.parametrize("label, candidate, hint", MISTAKES,
                         ids=[f"{label}-{hint[:24]}" for label, _, hint in MISTAKES])
def test_a_typical_mistake_gets_its_hint(label, candidate, hint, capsys):
    result = run(label, candidate, capsys)
    assert not result and result.status == "wrong"
    assert hint in result.message, result.message
    assert result.message.startswith("Not quite: ") and "\nHint: " in result.message


def test_feedback_never_shows_the_expected_values(capsys):
    """Hints say what is wrong, not what the answer is: no list of expected indices or numbers."""
    for label, candidate, _ in MISTAKES:
        message = run(label, candidate, capsys).message
        assert not re.search(r"[\[(]\s*-?[\d.]+\s*(,\s*-?[\d.]+\s*){2,}[\])]", message), message  # no number list
        assert "tensor(" not in message, message


# --- issue 14: a student function that never returns ------------------------------------------


def _loops_for_ever(*args, **kwargs):
    while True:
        pass


def _loops_and_swallows(*args, **kwargs):
    while True:
        try:
            pass
        except Exception:  # noqa: BLE001, S110 - a student's blanket except must not hide the time limit
            pass


@pytest.mark.parametrize("label", sorted(CORRECT))
def test_a_check_on_a_function_that_never_returns_fails_in_time(label, capsys):
    import time

    start = time.monotonic()
    state = torch.random.get_rng_state()
    result = exercises.CHECKS[label](_loops_for_ever, time_limit=0.3)
    assert time.monotonic() - start < 5.0
    assert not result and result.status == "wrong"
    assert "your function did not return within 0.3 s: an infinite loop?" in result.message and result.hint
    assert torch.equal(torch.random.get_rng_state(), state)
    assert capsys.readouterr().out.strip() == result.message


def test_the_time_limit_outside_the_main_thread_and_through_a_blanket_except(capsys):
    import threading

    results = {}
    worker = threading.Thread(target=lambda: results.update(
        r=exercises.check_count_per_class(_loops_and_swallows, time_limit=0.3)), daemon=True)
    worker.start()
    worker.join(10.0)
    assert not worker.is_alive(), "the check in a worker thread did not stop"
    assert results["r"].status == "wrong" and "did not return within 0.3 s" in results["r"].message
    # main thread (the SIGALRM path), through the student's `except Exception`
    assert "did not return within 0.3 s" in exercises.check_count_per_class(_loops_and_swallows, time_limit=0.3).message


def test_the_time_limit_keeps_the_callers_alarm_and_is_checked(capsys):
    import signal

    if not hasattr(signal, "setitimer"):
        pytest.skip("no POSIX timers here")
    handler = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        assert exercises.check_count_per_class(CORRECT["ex-template-2"]())
        assert signal.getsignal(signal.SIGALRM) is signal.SIG_IGN
        assert 90.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
    for bad in (0, -1.0, float("inf"), "5", True):
        result = exercises.check_count_per_class(CORRECT["ex-template-2"](), time_limit=bad)
        assert result.status == "wrong"
        assert "The 'time_limit' parameter of check_count_per_class must be a finite real number" in result.message
