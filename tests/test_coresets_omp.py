"""OMP solvers: the incremental Cholesky OMP against scikit-learn and a from-scratch loop, the
warm-started active-set non-negative OMP against scipy's NNLS re-solved at every pick, and
GradMatch's early stop once the non-negative fit is optimal over all points (issue 14, item 10)."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from distillkit.coresets import gradmatch
from distillkit.coresets.omp import orthogonal_matching_pursuit


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def fresh_omp(A, b, k, lam=0.0, positive=False):
    """OMP that re-solves the (ridge, optionally non-negative) fit from scratch at every pick."""
    support, w, r = [], np.zeros(0), b.copy()
    while len(support) < k:
        corr = A.T @ r if positive else np.abs(A.T @ r)
        corr[support] = -np.inf
        j = int(np.argmax(corr))
        if positive and corr[j] <= 1e-12:
            break
        cand = support + [j]
        M, rhs = A[:, cand], b
        if lam > 0:
            M = np.vstack([M, np.sqrt(lam) * np.eye(len(cand))])
            rhs = np.concatenate([b, np.zeros(len(cand))])
        if positive:
            w, _ = nnls(M, rhs, maxiter=50 * (len(cand) + 10))
            support = [s for s, x in zip(cand, w) if x > 0]
            w = w[w > 0]
        else:
            support, w = cand, np.linalg.lstsq(M, rhs, rcond=None)[0]
        r = b - A[:, support] @ w
    return support, w


@pytest.mark.parametrize("seed", range(3))
def test_plain_omp_same_picks_as_sklearn_beyond_the_first_buffer(seed):
    # k = 90 > 64: the factor's buffer doubles during the run.
    from sklearn.linear_model import orthogonal_mp

    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((120, 400)), rng.standard_normal(120)
    res = orthogonal_matching_pursuit(_t(A), _t(b), 90)
    ref = orthogonal_mp(A, b, n_nonzero_coefs=90)
    support, w = fresh_omp(A, b, 90)
    assert res.support.tolist() == support  # same picks in the same order
    assert set(support) == set(np.flatnonzero(ref).tolist())
    np.testing.assert_allclose(res.coef.numpy(), ref[res.support.numpy()], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b - A @ ref), rtol=1e-7)


def test_ridge_omp_float32_same_picks_as_fresh_solve():
    rng = np.random.default_rng(3)
    A, b = rng.standard_normal((60, 300)).astype(np.float32), rng.standard_normal(60).astype(np.float32)
    res = orthogonal_matching_pursuit(_t(A), _t(b), 70, lam=2.0)
    support, w = fresh_omp(A.astype(np.float64), b.astype(np.float64), 70, lam=2.0)
    assert res.support.tolist() == support and res.coef.dtype == torch.float32
    np.testing.assert_allclose(res.coef.numpy(), w, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_nonnegative_omp_equals_nnls_from_scratch(seed, lam):
    # Atoms leave the support (n_iter > picks kept) and the buffer grows past 64 atoms.
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((40, 300))
    b = A[:, :50] @ rng.random(50) / 50
    k = 100 if lam else 40
    res = orthogonal_matching_pursuit(_t(A), _t(b), k, positive=True, lam=lam)
    support, w = fresh_omp(A, b, k, lam=lam, positive=True)
    assert res.support.tolist() == support
    S, coef = res.support.numpy(), res.coef.numpy()
    assert np.all(coef > 0) and len(set(S.tolist())) == len(S)
    if lam:
        assert res.n_iter > len(S) == k  # the drop path ran, and the budget is filled
    # Residual: that of scipy's NNLS on the chosen support, to rounding.
    M = np.vstack([A[:, S], np.sqrt(lam) * np.eye(len(S))])
    rhs = np.concatenate([b, np.zeros(len(S))])
    ref, ref_norm = nnls(M, rhs, maxiter=5000)
    ours = np.linalg.norm(M @ coef - rhs)
    assert ours <= ref_norm * (1 + 1e-9) + 1e-12
    np.testing.assert_allclose(coef, ref, rtol=1e-6, atol=1e-10)


def test_nonnegative_omp_stops_at_the_optimum_over_all_atoms():
    # A 2-D dictionary small enough to check by hand: when OMP stops, its fit is scipy's
    # NNLS optimum over the whole dictionary and no atom has a positive gradient (KKT).
    A = np.array([[1.0, 1.0, 0.0, 2.0], [1.0, -0.5, 1.0, 0.1]])
    b = np.array([2.0, 0.3])
    res = orthogonal_matching_pursuit(_t(A), _t(b), 4, positive=True)
    S, coef = res.support.numpy(), res.coef.numpy()
    r = b - A[:, S] @ coef
    assert "optimal over all atoms" in res.early_stop
    assert np.all(A.T @ r <= 1e-9)  # no atom can improve the non-negative fit
    full, full_norm = nnls(A, b)
    np.testing.assert_allclose(res.residual_norm, full_norm, atol=1e-9)


def test_gradmatch_cannot_fill_a_budget_beyond_the_nonnegative_optimum():
    # Issue 14, item 10: 50 points in 10 dimensions, lam > 0. Once no remaining point has a
    # positive correlation with the residual, the weights are the non-negative ridge optimum
    # over all 50 points: no further point can get a positive weight, so the budget cannot be
    # filled. GradMatch says so (it does not claim otherwise) and never pads.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 10, generator=gen, dtype=torch.float64)
    y = torch.zeros(50, dtype=torch.int64)
    with pytest.raises(ValueError, match="optimal over all atoms"):
        gradmatch(x, y, 50, lam=0.1)
    sel = gradmatch(x, y, 50, lam=0.1, allow_fewer=True)
    m = len(sel)
    assert 10 < m < 50 and "optimal over all atoms" in sel.info["early_stop"][0]
    # The kept weights are the non-negative ridge optimum over ALL points (scipy NNLS).
    A, b = x.numpy().T, x.numpy().mean(0)
    lam_c = sel.info["lam_effective"][0]
    M = np.vstack([A, np.sqrt(lam_c) * np.eye(50)])
    w_all, _ = nnls(M, np.concatenate([b, np.zeros(50)]), maxiter=5000)
    assert set(np.flatnonzero(w_all > 1e-12).tolist()) == set(sel.indices.tolist())


def test_gradmatch_docstring_states_when_the_budget_cannot_be_filled():
    doc = gradmatch.__doc__
    assert "so OMP fills the budget" not in doc
    assert "optimum over all" in doc
