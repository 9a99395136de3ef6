"""Facility location: a monotone submodular coverage function, maximised greedily.

For a similarity matrix ``s`` (n x n, non-negative) and a set S of chosen points,

    F(S) = sum_i max_{j in S} s_ij,

so every point i is "served" by its most similar chosen point j. The greedy algorithm adds
the point with the largest marginal gain and reaches ``F(S) >= (1 - 1/e) max_{|S'| = k} F(S')``
(Nemhauser, Wolsey & Fisher 1978). Because gains only shrink as S grows (submodularity),
a gain computed at an earlier step is an upper bound on the current one: the *lazy*
greedy of Minoux (1978) keeps these stale bounds in a priority queue and re-evaluates only
the top of the queue. It makes exactly the same picks as the naive greedy, usually with
far fewer gain evaluations. CRAIG (Mirzasoleiman et al., ICML 2020) selects coresets this
way.

References
----------
- M. Minoux. Accelerated greedy algorithms for maximizing submodular set functions.
  Optimization Techniques, 1978.
- G. L. Nemhauser, L. A. Wolsey, M. L. Fisher. An analysis of approximations for
  maximizing submodular set functions. Mathematical Programming 14, 1978.
"""

from __future__ import annotations

import heapq

import torch

from .._validation import check_budget, check_tensor, fail
from ..types import Selection
from ._base import make_selection

__all__ = ["facility_location", "facility_location_naive", "cluster_sizes"]


def _check_similarity(similarity, budget, func: str):
    s = check_tensor(similarity, "similarity", func, ndim=2, floating=True, min_rows=1, half=False)
    if s.shape[0] != s.shape[1]:
        fail(func, "similarity", "a square (n, n) matrix", s)
    if s.numel() and float(s.min()) < 0:  # one reduction, no (n, n) mask; count only to report
        n_negative = int((s < 0).sum())
        fail(func, "similarity", "non-negative", f"<a matrix with {n_negative} negative entries>")
    budget = check_budget(budget, s.shape[0], func)
    return s.detach(), budget


def _candidate_rows(s: torch.Tensor) -> torch.Tensor:
    """Row j = the column j of ``s`` (what candidate j offers every point), contiguous."""
    if s.is_contiguous() and torch.equal(s, s.T):
        return s  # symmetric: no copy
    return s.T.contiguous()  # one (n, n) copy


def _gains(rows: torch.Tensor, cur: torch.Tensor, idx=None, *, block: int = 128) -> torch.Tensor:
    """Marginal gains ``sum_i max(s_ij - cur_i, 0)`` of candidates ``idx`` (all when None), in
    float64, computed in blocks of rows.

    Both greedy variants call this one function, and every row is reduced by the same
    kernel whatever the block, so a candidate's gain is the same number whichever variant
    computes it (the tests check that picks and gains are identical).
    """
    m = rows.shape[0] if idx is None else idx.numel()
    out = torch.empty(m, dtype=torch.float64, device=rows.device)
    for start in range(0, m, block):
        sub = rows[start:start + block] if idx is None else rows.index_select(0, idx[start:start + block])
        out[start:start + block] = (sub - cur).clamp_min_(0.0).sum(1, dtype=torch.float64)  # (b,)
    return out


def cluster_sizes(similarity: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """How many points each chosen point serves: ``|{i : argmax_{j in S} s_ij = j}|``.

    A point that is itself chosen is served by itself when ``s_ii`` is one of its largest
    similarities to ``S``; other ties go to the earliest pick. Computed in blocks of rows.

    Parameters
    ----------
    similarity : Tensor of shape (n, n)
        Finite, non-negative similarities; ``s_ij`` is how well chosen point j serves point i.
    indices : Tensor of shape (k,)
        The chosen points, in pick order.

    Returns
    -------
    Tensor of shape (k,), float64
        Cluster sizes; they sum to n.

    References
    ----------
    - B. Mirzasoleiman, J. Bilmes, J. Leskovec. Coresets for data-efficient training of
      machine learning models. ICML 2020 (the weights of CRAIG).

    Examples
    --------
    >>> s = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.5], [0.0, 1.5, 2.0]])
    >>> cluster_sizes(s, torch.tensor([0, 2])).tolist()  # point 1 is closer to point 2
    [1.0, 2.0]
    """
    func = "cluster_sizes"
    s = check_tensor(similarity, "similarity", func, ndim=2, floating=True, min_rows=1, half=False).detach()
    if s.shape[0] != s.shape[1]:
        fail(func, "similarity", "a square (n, n) matrix", s)
    idx = _check_indices(indices, s.shape[0], func)
    return _cluster_sizes(s, idx.to(s.device))


def _check_indices(indices, n: int, func: str) -> torch.Tensor:
    """Distinct int64 row indices in [0, n - 1], at least one, 1-D (a tensor or a list of ints)."""
    if not isinstance(indices, torch.Tensor):
        try:
            indices = torch.as_tensor(indices)
        except (TypeError, ValueError, RuntimeError):
            fail(func, "indices", "a 1-D integer tensor of row indices", indices, error=TypeError)
    idx = check_tensor(indices, "indices", func, ndim=1, floating=False, min_rows=1).to(torch.int64)
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        fail(func, "indices", f"row indices in [0, {n - 1}]", f"<indices from {int(idx.min())} to {int(idx.max())}>")
    if idx.unique().numel() != idx.numel():
        fail(func, "indices", "distinct row indices", f"<{idx.numel() - idx.unique().numel()} repeated indices>")
    return idx


def _cluster_sizes(s: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    n, k = s.shape[0], idx.numel()
    position = torch.full((n,), -1, dtype=torch.int64, device=s.device)
    position[idx] = torch.arange(k, device=s.device)
    counts = torch.zeros(k, dtype=torch.float64, device=s.device)
    block = max(1, (1 << 24) // max(k, 1))  # about 16M entries per block
    for start in range(0, n, block):
        sub = s[start:start + block].index_select(1, idx)  # (b, k)
        best, owner = sub.max(1)  # first maximum = earliest pick
        rows = torch.arange(start, min(start + block, n), device=s.device)
        me = position[rows]
        self_ok = (me >= 0) & (s[rows, rows] >= best)
        owner = torch.where(self_ok, me, owner)
        counts += torch.bincount(owner, minlength=k).double()
    return counts.cpu()


def _lazy_greedy(rows: torch.Tensor, budget: int, batch: int | None = None):
    """Lazy greedy. From n = 4,096 candidates on, the stale bounds at the top of the queue are
    re-evaluated ``batch`` = 16 at a time (one kernel call instead of 16: 30 % faster at
    n = 10,000, a few % more evaluations); below, one at a time, so that ``evaluations`` is the
    textbook algorithm's count. Neither changes a pick: a candidate is taken only once its fresh
    gain tops the queue, and a row's gain is the same number whichever block computes it."""
    n = rows.shape[0]
    batch = (16 if n >= 4096 else 1) if batch is None else batch
    cur = torch.zeros(rows.shape[1], dtype=rows.dtype, device=rows.device)
    first = _gains(rows, cur).tolist()
    evaluations = n
    heap = [(-g, j, 0) for j, g in enumerate(first)]  # (-upper bound, index, step it was computed at)
    heapq.heapify(heap)
    picks, gains = [], []
    for t in range(budget):
        while heap[0][2] != t:  # the top is stale: re-evaluate it and the stale bounds below it
            stale = [heapq.heappop(heap)[1]]
            while heap and heap[0][2] != t and len(stale) < batch:
                stale.append(heapq.heappop(heap)[1])
            fresh = _gains(rows, cur, torch.tensor(stale, device=rows.device)).tolist()
            evaluations += len(stale)
            for j, g in zip(stale, fresh):
                heapq.heappush(heap, (-g, j, t))
        neg, j, _ = heapq.heappop(heap)  # fresh: no other candidate can beat it (ties: lowest index first)
        picks.append(j)
        gains.append(-neg)
        torch.maximum(cur, rows[j], out=cur)
        # every bound in the queue is now stale: its stamp is at most t < t + 1
    return picks, gains, evaluations


def _naive_greedy(rows: torch.Tensor, budget: int):
    n = rows.shape[0]
    cur = torch.zeros(rows.shape[1], dtype=rows.dtype, device=rows.device)
    alive = torch.ones(n, dtype=torch.bool, device=rows.device)
    picks, gains, evaluations = [], [], 0
    for _ in range(budget):
        idx = alive.nonzero().squeeze(1)  # remaining candidates, ascending
        g = _gains(rows, cur, idx)
        evaluations += idx.numel()
        best = int(g.argmax())  # first maximum: ties go to the lowest index
        j = int(idx[best])
        picks.append(j)
        gains.append(float(g[best]))
        alive[j] = False
        torch.maximum(cur, rows[j], out=cur)
    return picks, gains, evaluations


def _result(s, picks, gains, evaluations, method, variant):
    idx = torch.tensor(picks, dtype=torch.int64)
    sizes = _cluster_sizes(s, idx.to(s.device))
    return make_selection(idx, method=method, weights=sizes, gains=torch.tensor(gains, dtype=torch.float64),
                          info={"evaluations": evaluations, "optimizer": variant,
                                "objective": float(sum(gains))}, dtype=torch.float64)


def facility_location(similarity: torch.Tensor, budget: int) -> Selection:
    """Maximise the facility-location function with the lazy greedy algorithm.

    ``F(S) = sum_i max_{j in S} s_ij``. Candidate gains live in a priority queue of stale
    upper bounds; only the top is re-evaluated, until a bound computed at the current step
    tops the queue. Picks and gains equal those of :func:`facility_location_naive` (ties go
    to the lowest index in both). Runs on the device of ``similarity``. Memory: the matrix,
    plus one (n, n) transposed copy when it is not symmetric.

    Parameters
    ----------
    similarity : Tensor of shape (n, n)
        Finite, non-negative similarities; ``s_ij`` is how well chosen point j serves point i.
    budget : int
        Number of points to choose, in [1, n].

    Returns
    -------
    Selection
        ``indices`` in pick order, ``gains`` (float64) the marginal gain of each pick (they
        sum to F(S)), ``weights`` the cluster sizes (see :func:`cluster_sizes`), and
        ``info["evaluations"]``, the number of single-candidate gain evaluations.

    References
    ----------
    - M. Minoux. Accelerated greedy algorithms for maximizing submodular set functions.
      Optimization Techniques, 1978.
    - B. Mirzasoleiman, J. Bilmes, J. Leskovec. Coresets for data-efficient training of
      machine learning models. ICML 2020.

    Examples
    --------
    >>> s = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 2.0, 3.0]])
    >>> sel = facility_location(s, 2)
    >>> sel.indices.tolist(), sel.gains.tolist()
    ([1, 0], [6.0, 2.0])
    """
    s, budget = _check_similarity(similarity, budget, "facility_location")
    picks, gains, evaluations = _lazy_greedy(_candidate_rows(s), budget)
    return _result(s, picks, gains, evaluations, "facility_location", "lazy")


def facility_location_naive(similarity: torch.Tensor, budget: int) -> Selection:
    """The naive greedy for facility location: every step re-evaluates every remaining gain.

    The reference for :func:`facility_location`; it costs ``sum_t (n - t)`` gain
    evaluations.

    Parameters
    ----------
    similarity : Tensor of shape (n, n)
        Finite, non-negative similarities.
    budget : int
        Number of points to choose, in [1, n].

    Returns
    -------
    Selection
        As :func:`facility_location` (``info["optimizer"]`` is ``"naive"``).

    References
    ----------
    - G. L. Nemhauser, L. A. Wolsey, M. L. Fisher. An analysis of approximations for
      maximizing submodular set functions. Mathematical Programming 14, 1978.

    Examples
    --------
    >>> s = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 2.0, 3.0]])
    >>> facility_location_naive(s, 2).info["evaluations"]
    5
    """
    s, budget = _check_similarity(similarity, budget, "facility_location_naive")
    picks, gains, evaluations = _naive_greedy(_candidate_rows(s), budget)
    return _result(s, picks, gains, evaluations, "facility_location", "naive")
