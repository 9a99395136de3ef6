"""Orthogonal matching pursuit (OMP), plain, ridge-regularised and non-negative.

OMP approximates a target ``b`` with a few columns ("atoms") of a matrix ``A``: each step
adds the atom most correlated with the current residual, then re-fits all coefficients on
the chosen atoms by (regularised, optionally non-negative) least squares (Pati, Rezaiifar
& Krishnaprasad 1993). GradMatch (Killamsetty et al., ICML 2021) uses the non-negative,
ridge-regularised variant on per-example gradients.

All variants keep the lower Cholesky factor ``L`` of the support's Gram
``A_S^T A_S + lam I``, updated by one row per pick (one triangular solve, as
scikit-learn's ``orthogonal_mp`` does). Each step costs one pass over ``A`` (the
correlations ``A^T r``) plus O(d m + m^2); the factor sits in an identity-padded
buffer so that every triangular solve runs on a contiguous matrix. The direct form
``A^T r`` is used rather than the Gram form ``A^T b - (A^T A_S) w``: both need one
``A^T a`` product per pick, and the Gram form's extra (n, m) matrix only pays when
n < 2d. The non-negative variant solves its NNLS by the Lawson-Hanson active-set method,
warm-started from the previous pick's solution: the new atom enters the passive set, and
atoms whose weight reaches zero leave it (the factor of the rest is rebuilt), so a pick
costs a few triangular solves instead of a fresh NNLS (Lawson & Hanson 1974).

References
----------
- Y. C. Pati, R. Rezaiifar, P. S. Krishnaprasad. Orthogonal matching pursuit:
  recursive function approximation with applications to wavelet decomposition. Asilomar
  Conference on Signals, Systems and Computers, 1993.
- K. Killamsetty, D. Sivasubramanian, G. Ramakrishnan, A. De, R. Iyer. GRAD-MATCH:
  gradient matching based data subset selection for efficient deep model training.
  ICML 2021.
- C. L. Lawson, R. J. Hanson. Solving Least Squares Problems, chapter 23. Prentice-Hall,
  1974.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .._validation import check_bool, check_float, check_int, check_tensor, fail

__all__ = ["OMPResult", "orthogonal_matching_pursuit"]


class OMPResult(NamedTuple):
    """What :func:`orthogonal_matching_pursuit` returns.

    Attributes
    ----------
    support : Tensor of shape (m,), int64, CPU
        Chosen atoms (column indices of ``A``) in the order they were picked; ``m <= k``.
    coef : Tensor of shape (m,), CPU
        Coefficients aligned with ``support`` (dtype of ``A``).
    residual_norm : float
        ``||b - A_S coef||`` at the end.
    n_iter : int
        Number of atoms added (more than ``m`` when the non-negative fit dropped atoms).
    early_stop : str or None
        Why fewer than ``k`` atoms were chosen, or None.
    residual_norms : tuple of float
        The residual norm after each iteration.
    """

    support: torch.Tensor
    coef: torch.Tensor
    residual_norm: float
    n_iter: int
    early_stop: str | None
    residual_norms: tuple


class _Factor:
    """Lower Cholesky factor ``L`` of the support's Gram ``A_S^T A_S + lam I``, on the CPU in float64.

    ``L`` lives in the top-left corner of a square buffer padded with the identity, so a
    triangular solve runs on the whole (contiguous) buffer: the padding rows give zeros
    and no slice is copied. The buffer doubles when full, so a solve costs O(m^2).
    """

    def __init__(self, cap: int, lam: float):
        self.m, self.lam = 0, lam
        self.cap = max(min(cap, 64), 1)
        self.limit = cap
        self.L = torch.eye(self.cap, dtype=torch.float64)  # (cap, cap)
        self.G = torch.zeros(self.cap, self.cap, dtype=torch.float64)  # the Gram itself, for rebuilds

    def _pad(self, v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.cap, 1, dtype=torch.float64)
        out[:v.shape[0], 0] = v
        return out

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``L^{-1} v`` for v of length m."""
        return torch.linalg.solve_triangular(self.L, self._pad(v), upper=False)[:v.shape[0], 0]

    def solve(self, c: torch.Tensor) -> torch.Tensor:
        """``(L L^T)^{-1} c``: the least-squares coefficients for ``c = A_S^T b``."""
        y = torch.linalg.solve_triangular(self.L, self._pad(c), upper=False)
        return torch.linalg.solve_triangular(self.L.mT, y, upper=True)[:c.shape[0], 0]

    def append(self, h: torch.Tensor, diag_sq: float) -> tuple[torch.Tensor, float]:
        """Add an atom with Gram column ``h`` (length m) and ``||a||^2 + lam``; returns (v, pivot^2)."""
        m = self.m
        v = self.forward(h) if m else h
        piv = diag_sq - float(v @ v)
        if piv <= 1e-10 * diag_sq:
            return v, piv
        if m == self.cap:
            cap = min(2 * self.cap, self.limit)
            L, G = torch.eye(cap, dtype=torch.float64), torch.zeros(cap, cap, dtype=torch.float64)
            L[:m, :m], G[:m, :m] = self.L[:m, :m], self.G[:m, :m]
            self.L, self.G, self.cap = L, G, cap
        self.L[m, :m] = v
        self.L[m, m] = math.sqrt(piv)
        self.G[m, :m] = h
        self.G[:m, m] = h
        self.G[m, m] = diag_sq
        self.m = m + 1
        return v, piv

    def keep(self, mask: torch.Tensor) -> None:
        """Drop the atoms where ``mask`` is False (rebuild the factor of the rest)."""
        idx = torch.nonzero(mask).squeeze(1)
        m = idx.numel()
        G = self.G[idx][:, idx]
        self.G.zero_()
        self.G[:m, :m] = G
        self.L = torch.eye(self.cap, dtype=torch.float64)
        if m:
            self.L[:m, :m] = torch.linalg.cholesky(G)
        self.m = m


def _omp_core(A: torch.Tensor, b: torch.Tensor, k: int, positive: bool, lam: float, tol: float | None) -> OMPResult:
    d = A.shape[0]
    dev = A.device
    b64 = b.double()
    b_norm = float(torch.linalg.vector_norm(b64))
    eps_a = torch.finfo(A.dtype).eps
    rows = torch.zeros(k, d, dtype=torch.float64, device=dev)  # row i: the support's i-th atom, float64
    fac = _Factor(k, lam)
    support: list[int] = []
    atb: list[float] = []  # a_i^T b for the support, in support order
    atb_t = torch.zeros(k, dtype=torch.float64)  # the same, as a tensor (plain OMP's support only grows)
    picked = torch.zeros(k, dtype=torch.int64, device=dev)  # plain OMP's support, on the device
    coef = torch.zeros(0, dtype=torch.float64)
    r = b64.clone()
    r_norm = b_norm
    norms, stop, n_iter = [], None, 0
    max_iter = 10 * k + 50  # only reachable when the non-negative fit keeps dropping atoms
    while len(support) < k:
        if tol is not None and r_norm <= tol:
            stop = f"residual norm {r_norm:.3g} <= tol"
            break
        if n_iter >= max_iter:
            stop = "iteration limit"
            break
        score = torch.mv(A.T, r.to(A.dtype))  # (n,) correlations with the residual: one pass over A
        if not positive:
            score.abs_()
        if support:  # chosen atoms cannot be picked again
            score.index_fill_(0, picked[:len(support)] if not positive else torch.tensor(support, device=dev),
                              -math.inf)
        j = int(score.argmax())  # first maximum: ties go to the lowest index
        a = A[:, j].double()
        a_sq = float(a @ a)
        if float(score[j]) / max(math.sqrt(a_sq), 1e-300) <= 64 * eps_a * r_norm + 1e-12 * b_norm:
            stop = ("no atom has a positive correlation with the residual (the non-negative fit is optimal "
                    "over all atoms)" if positive else "the residual is orthogonal to every atom")
            break
        m = len(support)
        aa = a_sq + lam
        _, piv = fac.append((rows[:m] @ a).cpu(), aa)  # (m,) Gram column of the new atom
        if piv <= 1e-10 * aa:
            stop = "the best atom is linearly dependent on the chosen ones"
            break
        rows[m] = a
        support.append(j)
        atb.append(float(a @ b64))
        picked[m] = j
        atb_t[m] = atb[-1]
        if positive:
            fit, support, atb = _nnls_step(fac, rows, support, atb, coef, b64, b_norm)
            if fit is None:  # numerically only: the theory gives the new atom a positive weight
                stop = "the best atom does not improve the non-negative fit"
                break
            coef = fit
        else:
            coef = fac.solve(atb_t[:m + 1])
        n_iter += 1
        r = b64 - rows[:len(support)].T @ coef.to(dev)
        r_norm = float(torch.linalg.vector_norm(r))
        norms.append(r_norm)
    return OMPResult(torch.tensor(support, dtype=torch.int64), coef.to(A.dtype).cpu(), r_norm, n_iter, stop,
                     tuple(norms))


def _nnls_step(fac, rows, support, atb, coef, b64, b_norm):
    """Lawson-Hanson active-set NNLS on the support plus its newest atom, warm-started.

    On entry the factor and ``rows`` hold the previous support (whose weights ``coef`` are
    the non-negative optimum on it, all positive) plus the new atom, at weight 0. Returns
    (weights, support, atb) with every weight positive, or (None, ...) after removing the
    new atom again when the fit cannot use it.
    """
    eps = torch.finfo(torch.float64).eps
    w = torch.cat([coef, coef.new_zeros(1)])  # (m,) feasible start
    dropped = []  # (atom, row, a^T b) that left the passive set during this step
    first = True
    for _ in range(3 * len(support) + 10):
        s = fac.solve(torch.tensor(atb, dtype=torch.float64))  # unconstrained optimum on the passive set
        if first and float(s[-1]) <= 0.0:
            fac.keep(torch.arange(len(support)) < len(support) - 1)
            return None, support[:-1], atb[:-1]
        first = False
        neg = s <= 0
        if not bool(neg.any()):
            w = s
            if not dropped:
                break
            # Outer Lawson-Hanson loop: a dropped atom whose gradient says it helps comes back.
            m = len(support)
            r = b64 - rows[:m].T @ w.to(rows.device)
            back = torch.stack([row for _, row, _ in dropped])  # (q, d)
            g = (back @ r).cpu() / torch.linalg.vector_norm(back, dim=1).cpu().clamp_min(1e-300)
            i = int(g.argmax())
            if float(g[i]) <= 64 * eps * float(torch.linalg.vector_norm(r)) + 1e-12 * b_norm:
                break
            atom, row, c = dropped.pop(i)
            _, piv = fac.append((rows[:m] @ row).cpu(), float(row @ row) + fac.lam)
            if piv <= 1e-10 * (float(row @ row) + fac.lam):
                break
            rows[m] = row
            support, atb = support + [atom], atb + [c]
            w = torch.cat([w, w.new_zeros(1)])
            continue
        # Step from w towards s until the first passive weight reaches zero; those atoms leave.
        ratio = torch.where(neg, w / (w - s), torch.full_like(w, math.inf))
        i = int(ratio.argmin())
        w = w + float(ratio[i]) * (s - w)
        w[i] = 0.0
        keep = w > 0
        for p in torch.nonzero(~keep).squeeze(1).tolist():
            dropped.append((support[p], rows[p].clone(), atb[p]))
        fac.keep(keep)
        m_new = int(keep.sum())
        rows[:m_new] = rows[:len(support)][keep.to(rows.device)].clone()
        support = [s_ for s_, kp in zip(support, keep.tolist()) if kp]
        atb = [c for c, kp in zip(atb, keep.tolist()) if kp]
        w = w[keep]
    return w, support, atb


def orthogonal_matching_pursuit(A: torch.Tensor, b: torch.Tensor, k: int, *, positive: bool = False,
                                lam: float = 0.0, tol: float | None = None) -> OMPResult:
    """Approximate ``b`` by at most ``k`` columns of ``A`` with orthogonal matching pursuit.

    Each step adds the atom ``j`` maximising ``|a_j^T r|`` (``a_j^T r`` when ``positive``),
    where ``r = b - A_S w`` is the current residual, then re-fits

        w = argmin_w ||A_S w - b||^2 + lam ||w||^2     (subject to w >= 0 when positive).

    With ``lam = 0`` and ``positive=False`` this is the classical OMP and equals
    ``sklearn.linear_model.orthogonal_mp(A, b, n_nonzero_coefs=k)``. With ``positive=True``
    atoms whose fitted weight becomes zero leave the support (and may return later), so
    every returned coefficient is strictly positive.

    OMP stops before ``k`` atoms when the residual norm is at most ``tol``, when no atom
    improves the fit (the residual is numerically orthogonal to every atom, no atom has a
    positive correlation, or the best atom is linearly dependent on the chosen ones); the
    reason is in ``early_stop``.

    Parameters
    ----------
    A : Tensor of shape (d, n)
        Dictionary; its n columns are the atoms.
    b : Tensor of shape (d,)
        Target.
    k : int
        Maximum number of atoms, in [1, n].
    positive : bool
        Non-negative coefficients (picks need a positive correlation).
    lam : float
        Ridge penalty on the coefficients, >= 0 (absolute, in the units of ``A^T A``).
    tol : float or None
        Stop once the residual norm (not squared) is at most ``tol``.

    Returns
    -------
    OMPResult
        ``support`` (pick order), ``coef``, ``residual_norm``, ``n_iter``, ``early_stop``,
        ``residual_norms``.

    References
    ----------
    - Y. C. Pati, R. Rezaiifar, P. S. Krishnaprasad. Orthogonal matching pursuit:
      recursive function approximation with applications to wavelet decomposition. 1993.
    - K. Killamsetty et al. GRAD-MATCH: gradient matching based data subset selection
      for efficient deep model training. ICML 2021.

    Examples
    --------
    >>> A = torch.eye(3, dtype=torch.float64); b = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    >>> res = orthogonal_matching_pursuit(A, b, 2)
    >>> res.support.tolist(), res.coef.tolist()
    ([1, 0], [-2.0, 0.5])
    >>> orthogonal_matching_pursuit(A, b, 2, positive=True).support.tolist()
    [0]
    """
    func = "orthogonal_matching_pursuit"
    A = check_tensor(A, "A", func, ndim=2, floating=True, min_rows=1)
    b = check_tensor(b, "b", func, ndim=1, floating=True)
    if b.shape[0] != A.shape[0]:
        fail(func, "b", f"a vector with one entry per row of A ({A.shape[0]})", b)
    if A.shape[1] < 1:
        fail(func, "A", "a matrix with at least one column (atom)", A)
    k = check_int(k, "k", func, low=1, high=A.shape[1])
    positive = check_bool(positive, "positive", func)
    lam = check_float(lam, "lam", func, low=0.0)
    if tol is not None:
        tol = check_float(tol, "tol", func, low=0.0)
    return _omp_core(A.detach(), b.detach().to(A.device), k, positive, lam, tol)
