"""Importance sampling with sensitivities: a weighted coreset with unbiased weights.

Feldman & Langberg, "A Unified Framework for Approximating and Clustering Data" (STOC 2011)
define the *sensitivity* of a point as the largest share of the total cost it can carry,
``sup_Q f_Q(x) / sum_x' f_Q(x')``, and sample points with probabilities proportional to upper
bounds ``s(x)`` on it, weighting each by the inverse of its sampling probability. Then every
weighted sum is an unbiased estimate of the full sum, and the sample size needed for a
(1 +- eps) approximation of every cost grows with the total sensitivity ``sum_x s(x)``.

Here the cost is k-means in feature space, ``f_Q(x) = min_{q in Q} ||x - q||^2``. A rough
solution B (k-means++ seeding) with ``cost(B) <= alpha * cost(OPT)`` gives the bound
(Lucic, Bachem & Krause, AISTATS 2016; Bachem, Lucic & Krause, "Practical Coreset
Constructions for Machine Learning", 2017)::

    s(x) = ( 2 alpha d(x,B)^2 / c + 4 alpha sum_{x' in X_b} d(x',B)^2 / (|X_b| c) + 4 n / |X_b| ) / n

with ``c = cost(B) / n`` and ``X_b`` the cluster of x's nearest centre in B. It follows from
``d(x,Q)^2 <= 2 d(x,b)^2 + 2 d(b,Q)^2``, averaging ``d(b,Q)^2`` over ``X_b`` the same way, and
``cost(Q) >= cost(B) / alpha``. The constants 2 and 4 are those of this derivation; variants
of the bound in circulation differ in them, which changes only the balance between the
distance terms and the uniform term (and never the unbiasedness of the weights).
"""

from __future__ import annotations

import math

import torch

from .._validation import check_bool, check_float, check_generator, check_int, check_tensor, fail
from ._base import check_common, class_budgets, make_selection, register, resolve_features

__all__ = ["sensitivity_scores", "importance_sample", "sensitivity"]


def _sq_dist(features: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    return (features - center).pow(2).sum(1)  # (n,)


def sensitivity_scores(features: torch.Tensor, *, n_centers: int = 10, alpha: float | None = None,
                       generator=None) -> torch.Tensor:
    """Upper bounds on every point's k-means sensitivity, from a k-means++ solution B.

    Parameters
    ----------
    features : Tensor of shape (n, d)
        The embedding in which the centres are found, one row per example.
    n_centers : int
        Centres of the rough solution B, drawn by D^2 sampling (k-means++ seeding); fewer
        when the data has fewer distinct points.
    alpha : float, optional
        Assumed approximation factor of B; default ``16 (ln k + 2)`` (k-means++ is an
        ``8 (ln k + 2)`` approximation in expectation, so this holds with probability >= 1/2).
    generator : torch.Generator, int or None
        Drives the D^2 sampling.

    Returns
    -------
    Tensor of shape (n,)
        ``s(x) >= d(x,Q)^2 / cost(X,Q)`` for every set of centres Q whose cost is at least
        ``cost(B) / alpha`` (every Q of at most ``n_centers`` centres when B is an
        alpha-approximation). They sum to ``6 alpha + 4 |B|``.

    References
    ----------
    Feldman & Langberg, "A Unified Framework for Approximating and Clustering Data", STOC 2011;
    Lucic, Bachem & Krause, "Strong Coresets for Hard and Soft Bregman Clustering", AISTATS 2016;
    Bachem, Lucic & Krause, "Practical Coreset Constructions for Machine Learning", arXiv:1703.06476.

    Examples
    --------
    >>> f = torch.tensor([[0.0], [0.0], [10.0]])
    >>> sensitivity_scores(f, n_centers=2, alpha=1.0, generator=0)  # two exact clusters: 4 / |X_b|
    tensor([2., 2., 4.])
    """
    func = "sensitivity_scores"
    features = check_tensor(features, "features", func, ndim=2, floating=True, min_rows=1, half=False)
    n_centers = check_int(n_centers, "n_centers", func, low=1)
    k = min(n_centers, features.shape[0])
    alpha = 16 * (math.log(k) + 2) if alpha is None else check_float(alpha, "alpha", func, low=1.0)
    gen = check_generator(generator, func)
    return _sensitivity(features, k, alpha, gen)


def _d2_seeding(features, k, gen):
    """k-means++ seeding: centre indices, squared distance to the nearest centre, assignment."""
    n = features.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [first]
    dist = _sq_dist(features, features[first])  # (n,) squared distance to the nearest centre
    assign = torch.zeros(n, dtype=torch.int64, device=features.device)
    for j in range(1, k):
        total = dist.sum()
        if float(total) <= 0:  # every point sits on a centre already
            break
        pick = int(torch.multinomial((dist / total).double().cpu(), 1, generator=gen))  # D^2 sampling
        centers.append(pick)
        d_new = _sq_dist(features, features[pick])
        closer = d_new < dist
        assign[closer] = j
        dist = torch.where(closer, d_new, dist)
    return centers, dist, assign


def _sensitivity(features, k, alpha, gen):
    n = features.shape[0]
    centers, dist, assign = _d2_seeding(features, k, gen)
    m = len(centers)
    size = torch.bincount(assign, minlength=m).to(features.dtype)  # (m,) |X_b|
    cluster_cost = torch.zeros(m, dtype=features.dtype, device=features.device).index_add_(0, assign, dist)
    c = dist.sum() / n  # average cost of B
    s = 4 * n / size[assign]
    if float(c) > 0:
        s = s + 2 * alpha * dist / c + 4 * alpha * cluster_cost[assign] / (size[assign] * c)
    return s / n


def importance_sample(scores: torch.Tensor, k: int, *, replace: bool = False, generator=None):
    """Draw ``k`` points with probabilities ``p_i = scores_i / sum(scores)``; unbiased weights.

    ``replace=True``: ``k`` i.i.d. draws (repeats possible), each weighted ``1 / (k p_i)``.
    ``replace=False``: ``k`` distinct points with inclusion probabilities ``pi_i = min(1, c p_i)``
    (``c`` such that the ``pi_i`` sum to ``k``, so ``pi_i = k p_i`` when no point is capped),
    drawn by systematic sampling over a random order (Madow, 1949), weighted ``1 / pi_i``
    (Horvitz & Thompson, 1952). Either way ``E[sum_j w_j f(x_j)] = sum_i f(x_i)`` for every f.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        Non-negative, not all zero.
    k : int
        Number of draws; without replacement at most the number of positive scores.
    replace : bool
        Draw ``k`` times independently (repeats possible) instead of ``k`` distinct points.
    generator : torch.Generator, int or None
        Source of the draws.

    Returns
    -------
    indices : Tensor of shape (k,), int64, on CPU
        In drawing order (capped, certain points first).
    weights : Tensor of shape (k,), float64, on CPU

    References
    ----------
    Horvitz & Thompson, "A Generalization of Sampling Without Replacement from a Finite
    Universe", JASA 1952; Feldman & Langberg, STOC 2011.

    Examples
    --------
    >>> idx, w = importance_sample(torch.tensor([1.0, 1.0, 2.0]), 2, generator=0)  # pi = (0.5, 0.5, 1)
    >>> idx[0].item(), w.tolist()
    (2, [1.0, 2.0])
    """
    func = "importance_sample"
    scores = check_tensor(scores, "scores", func, ndim=1, floating=True, min_rows=1)
    if bool((scores < 0).any()) or float(scores.sum()) <= 0:
        fail(func, "scores", "non-negative with a positive sum", scores)
    replace = check_bool(replace, "replace", func)
    n_pos = int((scores > 0).sum())
    k = check_int(k, "k", func, low=1, high=None if replace else n_pos)
    gen = check_generator(generator, func)
    p = scores.detach().cpu().double()
    p = p / p.sum()
    if replace:
        idx = torch.multinomial(p, k, replacement=True, generator=gen)
        return idx, 1.0 / (k * p[idx])
    pi = _inclusion_probabilities(p, k)
    certain = (pi >= 1.0).nonzero().squeeze(1)
    rest = (pi < 1.0).nonzero().squeeze(1)
    m = k - certain.numel()
    picks = certain
    if m > 0:
        order = rest[torch.randperm(rest.numel(), generator=gen)]
        cum = torch.cumsum(pi[order], 0)
        cum = cum * (m / cum[-1])  # exact total m despite rounding
        grid = torch.rand(1, generator=gen, dtype=torch.float64) + torch.arange(m, dtype=torch.float64)
        pos = torch.searchsorted(cum, grid, right=True).clamp_max(order.numel() - 1)
        picks = torch.cat([certain, order[pos]])
    return picks, 1.0 / pi[picks]


def _inclusion_probabilities(p: torch.Tensor, k: int) -> torch.Tensor:
    """pi_i = min(1, c p_i) with sum pi = k (float64; points within 1e-12 of 1 count as certain)."""
    pi = k * p
    certain = torch.zeros_like(p, dtype=torch.bool)
    while True:
        over = (pi >= 1.0 - 1e-12) & ~certain
        if not bool(over.any()):
            return pi
        certain |= over
        left = k - int(certain.sum())
        mass = p[~certain].sum()
        pi = torch.where(certain, torch.ones_like(p), left * p / mass if left > 0 else torch.zeros_like(p))


@register("sensitivity")
def sensitivity(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
                n_centers=10, alpha=None, calibrate=False):
    """Importance sampling with k-means sensitivities in feature space, with unbiased weights.

    The feature space is ``features``, else the penultimate embedding of ``model``, else the
    flattened inputs. Per class (or globally), sensitivities come from
    :func:`sensitivity_scores` and ``budget`` distinct points are drawn by
    :func:`importance_sample` without replacement; weights are ``1 / pi_i`` (``1 / (k p_i)``
    unless a point is certain), so the weights of a class estimate its size.

    Those estimates are noisy, and a network trained on a small weighted set is sensitive to
    the class totals of its weights (a class whose weights happen to sum high acts like a
    more frequent class). ``calibrate=True`` rescales the weights of each class (of the whole
    selection when ``per_class=False``) to sum exactly to the number of examples they stand
    for: the ratio (Hajek) estimator, no longer exactly unbiased for other sums but with exact
    class totals.

    Parameters
    ----------
    x, y, budget, per_class, features, model, generator, progress :
        The common head (``generator`` drives the seeding and the sampling).
    n_centers, alpha :
        See :func:`sensitivity_scores` (``n_centers`` per class when ``per_class``).
    calibrate : bool
        Rescale the weights to exact class totals (see above).

    Returns
    -------
    Selection
        ``weights`` are the inverse inclusion probabilities; ``scores`` (n,) the sensitivities.

    References
    ----------
    Feldman & Langberg, STOC 2011; Bachem, Lucic & Krause, arXiv:1703.06476, 2017.

    Examples
    --------
    >>> x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0)); y = torch.arange(40) % 2
    >>> sel = sensitivity(x, y, 6, generator=0)
    >>> len(sel), bool((sel.weights >= 1).all())
    (6, True)
    """
    func = "sensitivity"
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    gen = check_generator(generator, func)
    feats = resolve_features(x, features, model, func)
    k_centers = check_int(n_centers, "n_centers", func, low=1)
    if alpha is not None:
        alpha = check_float(alpha, "alpha", func, low=1.0)
    calibrate = check_bool(calibrate, "calibrate", func)
    y_cpu = y.cpu()
    groups = class_budgets(y_cpu, budget, func=func) if per_class else {None: budget}
    scores = torch.zeros(x.shape[0], dtype=torch.float64)
    idx, weights = [], []
    for c, k_c in groups.items():
        members = torch.arange(x.shape[0]) if c is None else (y_cpu == c).nonzero().squeeze(1)
        kc = min(k_centers, members.numel())
        a = 16 * (math.log(kc) + 2) if alpha is None else alpha
        s = _sensitivity(feats[members.to(feats.device)], kc, a, gen).double().cpu()
        scores[members] = s
        if k_c:
            i, w = importance_sample(s, k_c, generator=gen)
            idx.append(members[i])
            weights.append(w * (members.numel() / w.sum()) if calibrate else w)
    info = {"per_class": per_class, "n_centers": k_centers, "total_sensitivity": float(scores.sum()),
            "calibrated": calibrate}
    return make_selection(torch.cat(idx), method=func, weights=torch.cat(weights), scores=scores, info=info)
