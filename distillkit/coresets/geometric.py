"""Geometric coresets: herding and k-center greedy.

Both methods work in a feature space (given directly, computed from a model, or the
flattened inputs) and never look at a loss.

* **Herding**, as iCaRL implements it (Rebuffi et al., CVPR 2017, the rule the
  dataset-condensation papers use as their herding baseline): add, one at a time, the point
  that brings the mean of the selection closest to the mean of the data (greedy
  running-mean matching, an *argmin* of a distance). Herding itself comes from Welling
  (ICML 2009), whose rule is different: it keeps a weight vector ``w`` updated by
  ``w += mu - f_chosen`` and picks ``argmax_i <w, f_i>`` (Chen, Welling & Smola, UAI 2010,
  kernel herding); the two rules pick differently in general. The book's exercise
  compares them.
* **k-center greedy** (Gonzalez 1985; Sener & Savarese, ICLR 2018) adds, one at a time,
  the point farthest from the points already chosen. Its covering radius is at most twice
  the optimal k-center radius.

Both are invariant to translating and rescaling the features, and both work on features
centred on their (class) mean and scaled by a power of two to a largest entry in [0.5, 1)
(the power of two is exact; the centring rounds once): features of magnitude 1e20 or 1e-30, whose squared norms
overflow or underflow, or sharing an offset large against their spread, whose squared
norms would swamp the differences in float32, select what the original features select.

Both are memory-bound: one step reads the feature matrix once (one matrix-vector
product) and keeps O(n) extra state (a score or a running minimum distance per point).
Beyond one centred copy of the features of the class, no n x n or n x d temporary is built.

References
----------
- S.-A. Rebuffi, A. Kolesnikov, G. Sperl, C. H. Lampert. iCaRL: incremental classifier and
  representation learning. CVPR 2017 (the rule implemented by :func:`herding`).
- M. Welling. Herding dynamical weights to learn. ICML 2009 (the origin of herding).
- O. Sener and S. Savarese. Active learning for convolutional neural networks: a
  core-set approach. ICLR 2018.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_bool, check_generator, check_tensor
from ..types import Selection
from ._base import check_common, class_budgets, make_selection, register, resolve_features

__all__ = ["herding", "k_center_greedy"]


def _groups(y: torch.Tensor, budget: int, per_class: bool, func: str):
    """(class or None, CPU row indices, budget) for each block the method runs on."""
    if not per_class:
        return [(None, None, budget)]
    y_cpu = y.cpu()
    return [(c, (y_cpu == c).nonzero().squeeze(1), k) for c, k in class_budgets(y_cpu, budget, func=func).items()
            if k > 0]


def _prepare(x, y, budget, per_class, features, model, generator, progress, func):
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    check_bool(progress, "progress", func)
    gen = check_generator(generator, func)
    f = resolve_features(x, features, model, func).detach()  # (n, d); given features are checked there
    if features is None and model is not None:
        f = check_tensor(f, "features", func, ndim=2, floating=True)  # a model's output can be NaN
    return f, y, budget, gen


def _ldexp(t: torch.Tensor, e: int) -> torch.Tensor:
    """``t * 2**e``, exact, in steps whose factor every float dtype can represent."""
    while e:
        step = max(-60, min(60, e))
        t = t * 2.0 ** step
        e -= step
    return t


def _normalised(f: torch.Tensor):
    """``(f - mean(f)) * 2**-e`` with the largest entry in [0.5, 1) in magnitude, and ``e``.

    Selection by distances is invariant to both maps; the power of two is exact, so only
    the centring rounds (once, in the dtype of ``f``)."""
    g = f - f.mean(0)
    top = float(g.abs().max()) if g.numel() else 0.0
    if top == 0.0 or not math.isfinite(top):
        return g, 0
    e = math.frexp(top)[1]
    return _ldexp(g, -e), e


def _squared_norms(f: torch.Tensor, block: int = 8192) -> torch.Tensor:
    """Row norms squared, shape (m,), in blocks (no (m, d) temporary)."""
    out = torch.empty(f.shape[0], dtype=f.dtype, device=f.device)
    for start in range(0, f.shape[0], block):
        rows = f[start:start + block]
        out[start:start + block] = (rows * rows).sum(1)
    return out


def _herding_core(f: torch.Tensor, k: int, progress: bool = False):
    """Greedy herding on the rows of ``f`` (m, d); returns local picks (k,) and gains (k,)."""
    from tqdm.auto import trange

    m, d = f.shape
    mu = f.mean(0)  # (d,) the target mean
    sq = _squared_norms(f)  # (m,)
    total = torch.zeros(d, dtype=f.dtype, device=f.device)  # sum of the selected rows
    taken = torch.zeros(m, dtype=torch.bool, device=f.device)
    picks = torch.empty(k, dtype=torch.int64, device=f.device)
    gains = torch.empty(k, dtype=torch.float64, device=f.device)
    for t in trange(k, disable=not progress, desc="herding", leave=False):
        # ||mu - (total + f_i)/(t+1)||^2 = ||r - f_i||^2 / (t+1)^2 with r = (t+1) mu - total;
        # the argmin over i only needs ||f_i||^2 - 2 r . f_i  (one matrix-vector product).
        r = (t + 1) * mu - total
        score = torch.addmv(sq, f, r, alpha=-2.0).masked_fill_(taken, float("inf"))
        j = score.argmin().view(1)  # first minimum: ties go to the lowest index
        picks[t] = j[0]
        taken[j] = True
        total += f.index_select(0, j)[0]
        gains[t] = torch.linalg.vector_norm((mu - total / (t + 1)).double())
    return picks, gains


def _k_center_core(f: torch.Tensor, k: int, first: int, progress: bool = False):
    """Farthest-first traversal of the rows of ``f`` (m, d) from row ``first``.

    Returns local picks (k,) and the covering radius after each pick (k,).
    """
    from tqdm.auto import trange

    m = f.shape[0]
    sq = _squared_norms(f)  # (m,)
    picks = torch.empty(k, dtype=torch.int64, device=f.device)
    gains = torch.empty(k, dtype=torch.float64, device=f.device)
    min_d2 = torch.full((m,), float("inf"), dtype=f.dtype, device=f.device)  # running min squared distance
    j = torch.tensor([first], device=f.device)
    for t in trange(k, disable=not progress, desc="k-center", leave=False):
        picks[t] = j[0]
        c = f.index_select(0, j)[0]  # (d,) the new centre
        d2 = torch.addmv(sq + sq[j], f, c, alpha=-2.0).clamp_min_(0.0)  # ||f_i - c||^2 for all i
        torch.minimum(min_d2, d2, out=min_d2)
        min_d2[j] = -1.0  # chosen points are never chosen again (and cover themselves)
        best = min_d2.max()
        gains[t] = best.clamp_min(0.0).double().sqrt()  # covering radius of the first t+1 picks
        j = min_d2.argmax().view(1)  # first maximum: ties go to the lowest index
    return picks, gains


@register("herding")
def herding(x: torch.Tensor, y: torch.Tensor, budget: int, *, per_class: bool = True, features=None, model=None,
            generator=None, progress: bool = False) -> Selection:
    """Herding as in iCaRL: greedily match the mean of the selection to the mean of the data.

    Step t adds the not-yet-chosen point i that minimises
    ``|| mu - (sum_{j in S} f_j + f_i) / (t + 1) ||``, where ``mu`` is the mean feature of the
    class (``per_class=True``, exact budgets from :func:`class_budgets`) or of all data.
    Each step costs one pass over the features (O(n d)) thanks to a running sum; ties go
    to the lowest index, so the result is deterministic. This is the exemplar-selection rule
    of iCaRL (Rebuffi et al. 2017), not Welling's herding (2009), which picks
    ``argmax_i <w, f_i>`` for a weight vector updated by ``w += mu - f_chosen``.
    Features are centred and scaled by a power of two internally (see the module docstring),
    so the picks do not depend on the features' offset or scale.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep, in [1, n].
    per_class : bool
        Run herding within each class with exact per-class budgets (default) or on all data.
    features : Tensor of shape (n, d), optional
        Feature space to herd in. Default: ``model``'s penultimate embedding if a model is
        given, else the flattened inputs.
    model : nn.Module, optional
        Used only to compute features.
    generator : torch.Generator, int or None
        Accepted for the common head; herding is deterministic and draws nothing.
    progress : bool
        Show a progress bar over the greedy steps.

    Returns
    -------
    Selection
        ``indices`` in pick order (class by class when ``per_class``), unit ``weights``, and
        ``gains[t]`` = the distance between the two means after pick t.

    References
    ----------
    - S.-A. Rebuffi, A. Kolesnikov, G. Sperl, C. H. Lampert. iCaRL: incremental classifier
      and representation learning. CVPR 2017 (the rule implemented here).
    - M. Welling. Herding dynamical weights to learn. ICML 2009 (herding's origin, a
      different update rule).

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [10.0]]); y = torch.zeros(4, dtype=torch.int64)
    >>> herding(x, y, 2).indices.tolist()  # the mean is 3.25: first 2, then 1 (not the outlier 10)
    [2, 1]
    """
    f, y, budget, _ = _prepare(x, y, budget, per_class, features, model, generator, progress, "herding")
    parts, gains = [], []
    for _, rows, k in _groups(y, budget, per_class, "herding"):
        block = f if rows is None else f.index_select(0, rows.to(f.device))  # (n_c, d) one class at a time
        block, e = _normalised(block)
        local, g = _herding_core(block, k, progress)
        local = local.cpu()
        parts.append(local if rows is None else rows[local])
        gains.append(_ldexp(g.cpu(), e))  # back to the units of the features
    return make_selection(torch.cat(parts), method="herding", gains=torch.cat(gains),
                          info={"per_class": per_class, "feature_dim": f.shape[1]})


@register("kcenter")
def k_center_greedy(x: torch.Tensor, y: torch.Tensor, budget: int, *, per_class: bool = True, features=None,
                    model=None, generator=None, progress: bool = False) -> Selection:
    """k-center greedy (farthest-first traversal) in a feature space.

    The first point is drawn uniformly from ``generator``; each further step adds the point
    whose distance to its nearest chosen point is largest. A running minimum-distance
    vector makes each step one matrix-vector product (O(n d) time, O(n) extra memory);
    distances use ``||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2``, so in float32 they carry
    a relative error of about 1e-7 and closer ties are broken arbitrarily. The covering
    radius of the result is at most twice the optimal k-center radius.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep, in [1, n].
    per_class : bool
        Run within each class with exact per-class budgets (default) or on all data.
    features : Tensor of shape (n, d), optional
        Feature space. Default: ``model``'s penultimate embedding if a model is given, else
        the flattened inputs.
    model : nn.Module, optional
        Used only to compute features.
    generator : torch.Generator, int or None
        Draws the first point (of each class).
    progress : bool
        Show a progress bar over the greedy steps.

    Returns
    -------
    Selection
        ``indices`` in pick order (class by class when ``per_class``), unit ``weights``, and
        ``gains[t]`` = the covering radius ``max_i min_{j chosen} ||f_i - f_j||`` of the
        class (or data) after pick t (non-increasing).

    References
    ----------
    - O. Sener and S. Savarese. Active learning for convolutional neural networks: a
      core-set approach. ICLR 2018.
    - T. F. Gonzalez. Clustering to minimize the maximum intercluster distance.
      Theoretical Computer Science 38, 1985.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [10.0]]); y = torch.zeros(4, dtype=torch.int64)
    >>> sel = k_center_greedy(x, y, 2, generator=0)
    >>> 3 in sel.indices.tolist()  # the outlier is always among the two centres
    True
    """
    f, y, budget, gen = _prepare(x, y, budget, per_class, features, model, generator, progress, "k_center_greedy")
    parts, gains = [], []
    for _, rows, k in _groups(y, budget, per_class, "k_center_greedy"):
        block = f if rows is None else f.index_select(0, rows.to(f.device))  # (n_c, d)
        block, e = _normalised(block)
        first = int(torch.randint(block.shape[0], (1,), generator=gen))
        local, g = _k_center_core(block, k, first, progress)
        local = local.cpu()
        parts.append(local if rows is None else rows[local])
        gains.append(_ldexp(g.cpu(), e))  # back to the units of the features
    return make_selection(torch.cat(parts), method="kcenter", gains=torch.cat(gains),
                          info={"per_class": per_class, "feature_dim": f.shape[1]})
