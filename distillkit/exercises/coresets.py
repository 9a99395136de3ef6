"""Checks for the coding exercises of the coreset chapters; the library is the oracle.

* ``ex-geometric-2``: :func:`check_welling_herding` against :func:`distillkit.coresets.herding`
  (Welling, ICML 2009).
* ``ex-uncertainty-2``: :func:`check_pooled_entropy` against ``select("entropy", ...)``.
* ``ex-error-loss-2``: :func:`check_lightweight_scores`, the lightweight-coreset
  distribution (Bachem, Lucic & Krause, KDD 2018).
* ``ex-boundary-2``: :func:`check_cal_aggregate` against :func:`distillkit.coresets.cal_scores`
  and :func:`distillkit.coresets.knn` (Margatina et al., EMNLP 2021).
* ``ex-gradient-2``: :func:`check_craig_weights` against the weights of
  :func:`distillkit.coresets.craig` (Mirzasoleiman et al., ICML 2020).
"""

from __future__ import annotations

import torch

from ..coresets import cal_scores, class_budgets, craig, entropy_scores, herding, knn, select
from ._check import Feedback, as_indices, as_tensor, call, constant_factor, exercise_check, first_match

__all__ = [
    "check_cal_aggregate",
    "check_craig_weights",
    "check_lightweight_scores",
    "check_pooled_entropy",
    "check_welling_herding",
]


def _welling(h, k, *, start_zero=False, argmin=False, sign=1.0, exclude=True):
    mu = h.mean(0)
    w, chosen = (torch.zeros_like(mu) if start_zero else mu.clone()), []
    for _ in range(k):
        score = h @ w
        if exclude and chosen:
            score[chosen] = float("inf") if argmin else -float("inf")
        i = int(score.argmin() if argmin else score.argmax())
        chosen.append(i)
        w = w + sign * (mu - h[i])
    return chosen


@exercise_check("ex-geometric-2", "welling_herding", "the list of k picked row indices, in pick order")
def check_welling_herding(fn) -> str:
    """Check ``fn(h, k) -> picks`` (Welling's weight-vector herding) against the library's herding
    on random unit-norm features.

    Parameters
    ----------
    fn : callable
        The student's ``welling_herding``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    for seed, n, d, k in ((0, 40, 6, 12), (1, 25, 3, 25)):
        h = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        h = h / torch.linalg.vector_norm(h, dim=1, keepdim=True)  # (n, d) equal norms
        h_before = h.clone()
        picks = as_indices(call(fn, h, k, case=f"{n} unit-norm features of dimension {d}, k={k}"), "welling_herding")
        if not torch.equal(h, h_before):
            raise Feedback("your function changed h in place", "work on copies: start with w = mu.clone().")
        expected = herding(h, torch.zeros(n, dtype=torch.int64), k, per_class=False, features=h).indices.tolist()
        if picks == expected:
            continue
        if len(picks) != k:
            raise Feedback(f"returned {len(picks)} picks for k={k}", "make exactly k picks, one per step.")
        if len(set(picks)) < len(picks):
            raise Feedback("the same example was picked twice",
                           "exclude chosen examples: set their scores to -inf before taking the argmax.")
        if not all(0 <= i < n for i in picks):
            raise Feedback("some picks are not row indices of h", "return row numbers in [0, n).")
        hint = first_match(picks, [
            ("Welling's rule takes the argmax of w_t . h_i, not the argmin.", _welling(h, k, argmin=True)),
            ("start from w_0 = mu, the mean feature, not from zero.", _welling(h, k, start_zero=True)),
            ("the update adds the mean and subtracts the chosen feature: w + mu - h_i.", _welling(h, k, sign=-1.0)),
        ], lambda a, b: a == b)
        if hint:
            raise Feedback("the picks differ from herding's", hint)
        if sorted(picks) == sorted(expected):
            raise Feedback("the right examples, but not in the order they were picked",
                           "return the picks in pick order (append each pick to a list), not sorted.")
        first = "the first pick" if picks[0] != expected[0] else "a later pick"
        raise Feedback(f"{first} differs from herding's",
                       "score every row by w_t . h_i, take the best unchosen row, then update w.")
    return "the same picks, in the same order, as distillkit.coresets.herding on unit-norm features."


def _pool_bound_ok(picks, y, scores, budget, factor) -> bool:
    """Every kept example must be in the top k_c of *some* pool of size factor * k_c: at most
    n_c - pool + k_c - 1 classmates may score higher."""
    for c, k in class_budgets(y, budget).items():
        members = scores[y == c]
        pool = min(factor * k, len(members))
        for i in picks:
            if int(y[i]) == c and int((members > scores[i]).sum()) > len(members) - pool + k - 1:
                return False
    return True


@exercise_check("ex-uncertainty-2", "pooled_entropy", "the kept indices (a 1-D int64 tensor)")
def check_pooled_entropy(fn) -> str:
    """Check ``fn(x, y, budget, probs, factor, generator) -> indices`` (random pool of
    ``factor * k_c`` per class, keep the ``k_c`` highest entropies) on 4 classes of 30.

    Parameters
    ----------
    fn : callable
        The student's ``pooled_entropy``; ``generator`` is passed as an int seed.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(30)[torch.randperm(120, generator=g)]  # (120,) 4 classes of 30
    x = torch.randn(120, 3, generator=g)
    probs = torch.softmax(2 * torch.randn(120, 4, generator=g), 1)  # (120, 4)
    scores, budget = entropy_scores(probs), 20

    def run(factor, seed):
        out = call(fn, x, y, budget, probs, factor, seed, case=f"120 examples, budget {budget}, factor {factor}")
        return as_indices(out, "pooled_entropy")

    picks = run(4, 0)
    if len(picks) != budget:
        raise Feedback(f"returned {len(picks)} indices for a budget of {budget}",
                       "keep exactly k_c per class; a class's pool holds factor * k_c examples (at most the class).")
    if len(set(picks)) < len(picks) or not all(0 <= i < 120 for i in picks):
        raise Feedback("some indices are repeated or out of range",
                       "draw the pool without replacement (torch.randperm) and return indices into x.")
    counts = torch.bincount(y[torch.tensor(picks)], minlength=4).tolist()
    if counts != [class_budgets(y, budget)[c] for c in range(4)]:
        raise Feedback("the classes do not get exactly their budgets",
                       "draw the pool and keep the top k_c *within each class* (class_budgets(y, budget) "
                       "gives k_c).")
    if sorted(picks) != sorted(run(4, 0)):
        raise Feedback("two calls with the same generator seed kept different examples",
                       "draw the pool from a torch.Generator seeded with `generator`.")
    plain = select("entropy", x, y, budget, probs=probs).indices.tolist()
    full = run(1000, 0)
    if sorted(full) != sorted(plain):
        least = [i for c in range(4) for i in (y == c).nonzero().squeeze(1)[
            torch.sort(scores[y == c], stable=True).indices[:5]].tolist()]  # the 5 lowest entropies per class
        if sorted(full) == sorted(least):
            raise Feedback("with a pool as large as the data you keep the least uncertain examples",
                           "keep the highest entropies (select_by_score keeps the top scores).")
        raise Feedback("with a pool as large as the data (factor 1000) the result is not the plain entropy selection",
                       "cap the pool at the class size and keep the k_c highest-entropy examples of it.")
    draws = [sorted(run(2, s)) for s in range(5)]
    if not all(_pool_bound_ok(p, y, scores, budget, 2) for p in draws):
        raise Feedback("with factor 2 a kept example has more higher-entropy classmates than any pool of "
                       "2 k_c could leave out",
                       "keep the k_c highest-entropy examples *of the pool*, after drawing the pool at random.")
    if all(d == draws[0] for d in draws):
        raise Feedback("with factor 2 the selection is the same for every generator: the pool is not random",
                       "draw factor * k_c members of each class at random before ranking them.")
    return "exact per-class budgets, a random pool per class, the most uncertain of the pool kept."


def _light(f, *, squared=True, centre=True, uniform=True, half=True):
    d = f - f.mean(0) if centre else f
    d2 = d.pow(2).sum(1) if squared else d.pow(2).sum(1).sqrt()
    part = (0.5 if half else 1.0) * d2 / d2.sum()
    return part + 0.5 / len(f) if uniform else part


@exercise_check("ex-error-loss-2", "lightweight_scores", "a tensor of shape (n,) of sampling probabilities")
def check_lightweight_scores(fn) -> str:
    """Check ``fn(features) -> q`` with ``q_i = 1/(2n) + ||x_i - mu||^2 / (2 sum_j ||x_j - mu||^2)``.

    Parameters
    ----------
    fn : callable
        The student's ``lightweight_scores``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float64, torch.float32):
        f = torch.randn(50, 3, generator=g, dtype=dtype) + 2.0  # (50, 3) off-centre: the mean matters
        q = as_tensor(call(fn, f.clone(), case=f"50 features of dimension 3 ({dtype})"), "lightweight_scores",
                      shape=(50,), dtype=dtype)
        expected = _light(f.double())
        if torch.allclose(q.detach().double(), expected, rtol=1e-4, atol=1e-7):
            continue
        hint = first_match(q.detach().double(), [
            ("each q_i is half uniform, 1/(2n), plus half the share of the squared distance.",
             _light(f.double(), uniform=False)),
            ("both halves carry a factor 1/2, so that the scores sum to 1.", _light(f.double(), half=False)),
            ("use the squared distance ||x_i - mu||^2.", _light(f.double(), squared=False)),
            ("measure the distance from the data mean mu = features.mean(0), not from the origin.",
             _light(f.double(), centre=False)),
        ], lambda a, b: torch.allclose(a, b, rtol=1e-4, atol=1e-7))
        if hint:
            raise Feedback("the scores differ from the lightweight distribution", hint)
        if abs(float(q.double().sum()) - 1) > 1e-4:
            raise Feedback(f"the scores sum to {float(q.double().sum()):.3g}, not 1",
                           "the scores are sampling probabilities: both halves must sum to 1.")
        raise Feedback("the scores differ from the lightweight distribution",
                       "q_i = 1/(2n) + 1/2 * d_i / sum_j d_j with d_i = ||x_i - mu||^2.")
    return "the lightweight-coreset distribution, in the dtype of the features."


def _cal_variant(probs, features, k, how, *, reverse=False, self_in=False):
    if self_in:
        nb = torch.cdist(features, features).topk(k, largest=False).indices  # (n, k) the point itself first
    else:
        nb = knn(features, k)[1]
    p = probs.clamp(1e-12, 1.0)
    if reverse:
        kl = (p[:, None] * (p.log()[:, None] - p[nb].log())).sum(2)  # KL(p_i || p_j)
    else:
        kl = (p[nb] * (p[nb].log() - p.log()[:, None])).sum(2)  # (n, k) KL(p_j || p_i)
    return {"mean": kl.mean(1), "max": kl.max(1).values, "median": kl.median(1).values, "sum": kl.sum(1)}[how]


@exercise_check("ex-boundary-2", "cal_aggregate", "a tensor of shape (n,): one score per example")
def check_cal_aggregate(fn) -> str:
    """Check ``fn(probs, features, k, how) -> scores`` for ``how`` in mean, max and median
    against ``cal_scores`` (mean) and the library's ``knn`` (max, median; odd ``k``).

    Parameters
    ----------
    fn : callable
        The student's ``cal_aggregate``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    features = torch.randn(40, 2, generator=g)  # (40, 2)
    probs = torch.softmax(2 * torch.randn(40, 3, generator=g), 1)  # (40, 3)

    def same(a, b):
        return torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)

    for k, how in ((5, "mean"), (5, "max"), (5, "median"), (1, "mean"), (1, "max")):
        out = as_tensor(call(fn, probs, features, k, how, case=f"40 examples, k={k}, how={how!r}"), "cal_aggregate",
                        shape=(40,))
        expected = cal_scores(probs, features, k=k) if how == "mean" else _cal_variant(probs, features, k, how)
        if same(out.detach(), expected):
            continue
        hint = first_match(out.detach(), [
            ("CAL uses KL(p_neighbour || p_point): the neighbour's probabilities weight the log-ratio.",
             _cal_variant(probs, features, k, how, reverse=True)),
            ("a point is not its own neighbour: use distillkit.coresets.knn, which leaves it out.",
             _cal_variant(probs, features, k, how, self_in=True)),
            ("average the k divergences for how='mean' (you summed them).", _cal_variant(probs, features, k, "sum")),
            ("how='max' and how='median' are swapped.",
             _cal_variant(probs, features, k, {"max": "median", "median": "max"}.get(how, how))),
        ], same)
        raise Feedback(f"the scores for k={k}, how={how!r} differ from CAL's", hint or
                       "for each point, average (or max, or median) KL(p_j || p_i) over its k nearest neighbours j.")
    zeros = probs.clone()
    zeros[::4] = torch.nn.functional.one_hot(zeros[::4].argmax(1), 3).float()  # exact zeros in every fourth row
    out = as_tensor(call(fn, zeros, features, 5, "mean", case="probabilities with exact zeros"), "cal_aggregate",
                    shape=(40,))
    if not torch.isfinite(out).all():
        raise Feedback("probabilities with exact zeros give inf or NaN scores",
                       "clip the probabilities to [eps, 1] (e.g. probs.clamp(1e-12, 1)) before the logarithm.")
    return "mean, max and median aggregation of CAL's neighbour divergences; 'mean' equals cal_scores."


def _craig_weights(g, y, indices, *, own_class=True, count_self=True, farthest=False):
    w = torch.zeros(len(indices))
    for c in (y.unique() if own_class else [None]):
        rows = (y == c).nonzero().squeeze(1) if own_class else torch.arange(len(y))
        slots = [j for j, i in enumerate(indices.tolist()) if not own_class or int(y[i]) == int(c)]
        dist = torch.cdist(g[rows], g[indices[slots]])  # (n_c, k_c)
        nearest = dist.argmax(1) if farthest else dist.argmin(1)
        w[slots] = torch.bincount(nearest, minlength=len(slots)).float() - (0 if count_self else 1)
    return w


@exercise_check("ex-gradient-2", "craig_weights", "a tensor with one weight per entry of indices")
def check_craig_weights(fn) -> str:
    """Check ``fn(features, y, indices) -> weights`` (the size of each chosen example's cluster
    within its class) against ``craig(...).weights``, also with the chosen indices shuffled.

    Parameters
    ----------
    fn : callable
        The student's ``craig_weights``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)[torch.randperm(60, generator=g)]  # (60,) 3 classes of 20
    feats = torch.randn(60, 4, generator=g, dtype=torch.float64)  # (60, 4) gradient features
    sel = craig(feats, y, 9, features=feats)
    order = torch.randperm(9, generator=g)
    for indices, expected in ((sel.indices, sel.weights), (sel.indices[order], sel.weights[order])):
        w = call(fn, feats, y, indices.clone(), case="60 examples in 3 classes, 9 chosen")
        w = as_tensor(torch.as_tensor(w) if isinstance(w, list) else w, "craig_weights")
        if w.numel() != len(indices):
            raise Feedback(f"returned {w.numel()} weights for {len(indices)} chosen examples",
                           "return one weight per entry of indices.")
        w = w.detach().reshape(-1).double()
        if torch.allclose(w, expected.double()):
            continue
        hint = first_match(w, [
            ("assign each example only to chosen examples of its own class.",
             _craig_weights(feats, y, indices, own_class=False)),
            ("a chosen example is in its own cluster: count it.", _craig_weights(feats, y, indices, count_self=False)),
            ("assign each example to the *nearest* chosen gradient (argmin of the distance).",
             _craig_weights(feats, y, indices, farthest=True)),
        ], lambda a, b: torch.allclose(a, b.double()))
        if hint is None and constant_factor(w, expected) is not None:
            hint = "a weight is a count of examples, not a fraction: do not normalise."
        if hint is None and sorted(w.tolist()) == sorted(expected.tolist()):
            hint = "return the weights in the order of `indices`, one per chosen example."
        raise Feedback("the weights differ from CRAIG's",
                       hint or "for each class, assign every example to its nearest chosen example and count.")
    return "the weights are the cluster sizes of CRAIG's picks and sum to the class sizes."
