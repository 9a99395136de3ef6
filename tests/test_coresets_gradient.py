"""Facility location, OMP, CRAIG and GradMatch against independent oracles: apricot
(including its own digits golden ranking), scikit-learn's orthogonal_mp, scipy's NNLS,
closed-form ridge solves, naive greedy, and hand-made clusters."""

import numpy as np
import pytest
import torch

from distillkit.coresets import (
    class_budgets,
    cluster_sizes,
    craig,
    craig_similarity,
    facility_location,
    facility_location_naive,
    gradient_embedding,
    gradmatch,
    orthogonal_matching_pursuit,
)
from distillkit.data import load_digits
from distillkit.models import MLP

# apricot's golden ranking and gains for FacilityLocationSelection(100, 'corr') on the
# 1,797 digits (jmschrei/apricot, tests/test_functions/test_facility_location.py); the
# similarity there is the squared Pearson correlation between images.
DIGITS_CORR_RANKING = [
    424, 1647, 396, 339, 1030, 331, 983, 1075, 1482, 1539, 1282, 493, 885, 823, 1051, 236, 537, 1161, 345, 1788,
    1432, 1634, 1718, 1676, 146, 1286, 655, 1292, 556, 533, 1545, 520, 1711, 1428, 620, 1276, 305, 438, 1026, 183,
    2, 384, 1012, 798, 213, 1291, 162, 1206, 227, 1655, 233, 1508, 410, 1295, 1312, 1350, 514, 938, 579, 1066, 82,
    164, 948, 1588, 1294, 1682, 943, 517, 959, 1429, 762, 898, 1556, 881, 1470, 1549, 1325, 1568, 937, 347, 1364,
    126, 732, 1168, 241, 573, 731, 815, 864, 1639, 1570, 411, 1086, 696, 870, 1156, 353, 160, 1381, 326,
]
DIGITS_CORR_GAINS_HEAD = [736.794, 114.2782, 65.4154, 61.3037, 54.5428, 38.7506, 34.097, 32.6649, 30.2813, 27.8395]


def random_similarity(n, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=gen, dtype=dtype)
    return a + a.T  # symmetric, random diagonal: no structural ties


# ---------------------------------------------------------------- facility location
def test_facility_location_hand_worked():
    s = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 2.0, 3.0]])
    sel = facility_location(s, 3)
    # column sums 4, 6, 5 -> pick 1; then point 0 gains 3-1 from candidate 0, point 2 gains 3-2
    assert sel.indices.tolist() == [1, 0, 2]
    assert sel.gains.tolist() == [6.0, 2.0, 1.0]
    assert sel.weights.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lazy_equals_naive(seed, dtype):
    s = random_similarity(150, seed, dtype)
    lazy, naive = facility_location(s, 60), facility_location_naive(s, 60)
    assert torch.equal(lazy.indices, naive.indices)
    assert torch.equal(lazy.gains, naive.gains)
    assert torch.equal(lazy.weights, naive.weights)
    assert lazy.info["evaluations"] < naive.info["evaluations"] == sum(150 - t for t in range(60))


@pytest.mark.parametrize("batch", [2, 16])
def test_lazy_batched_reevaluation_equals_naive(batch):
    # large inputs re-evaluate 16 stale bounds per call: the same picks and gains as the naive greedy
    from distillkit.coresets.facility import _candidate_rows, _lazy_greedy

    for s in (random_similarity(150, 4, torch.float64),
              torch.randint(0, 3, (40, 40), generator=torch.Generator().manual_seed(3)).double()):
        picks, gains, evaluations = _lazy_greedy(_candidate_rows(s), 30, batch=batch)
        naive = facility_location_naive(s, 30)
        assert picks == naive.indices.tolist()
        assert torch.equal(torch.tensor(gains, dtype=torch.float64), naive.gains)
        assert evaluations >= _lazy_greedy(_candidate_rows(s), 30, batch=1)[2]


def test_lazy_equals_naive_with_ties_and_non_symmetric():
    gen = torch.Generator().manual_seed(3)
    s = torch.randint(0, 3, (40, 40), generator=gen).double()  # many exact ties, not symmetric
    lazy, naive = facility_location(s, 40), facility_location_naive(s, 40)
    assert torch.equal(lazy.indices, naive.indices)
    assert torch.equal(lazy.gains, naive.gains)
    # gains sum to F(S) = sum_i max_j s_ij (the full set)
    assert float(lazy.gains.sum()) == float(s.max(1).values.sum())


def test_lazy_saves_evaluations_on_clustered_data():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    sel = facility_location(craig_similarity(g), 100)
    assert sel.info["evaluations"] * 5 <= sum(400 - t for t in range(100))


@pytest.mark.parametrize("seed", [0, 1])
def test_facility_location_matches_apricot(seed):
    apricot = pytest.importorskip("apricot")
    s = random_similarity(120, seed)
    ours = facility_location(s, 40)
    ref = apricot.FacilityLocationSelection(40, metric="precomputed", optimizer="lazy").fit(s.numpy())
    assert ours.indices.tolist() == [int(i) for i in ref.ranking]
    np.testing.assert_allclose(ours.gains.numpy(), np.asarray(ref.gains), rtol=1e-10)


def test_facility_location_reproduces_apricot_digits_golden_ranking():
    from sklearn.metrics import pairwise_distances

    x, _ = load_digits("all")  # scikit-learn's order; x / 16 leaves correlations unchanged
    sim = torch.from_numpy((1 - pairwise_distances(x.flatten(1).double().numpy(), metric="correlation")) ** 2)
    sel = facility_location(sim, 100)
    assert sel.indices.tolist() == DIGITS_CORR_RANKING
    np.testing.assert_array_almost_equal(sel.gains[:10].numpy(), DIGITS_CORR_GAINS_HEAD, 4)


def test_cluster_sizes_assign_to_nearest_and_self():
    s = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.5], [0.0, 1.5, 2.0]])
    assert cluster_sizes(s, torch.tensor([0, 2])).tolist() == [1.0, 2.0]
    # a tie between two chosen points goes to the earlier pick; a chosen point serves itself
    s = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert cluster_sizes(s, torch.tensor([2, 0])).tolist() == [2.0, 1.0]


@pytest.mark.parametrize("fn", [facility_location, facility_location_naive])
def test_facility_location_rejects_bad_input(fn):
    good = random_similarity(5, 0)
    with pytest.raises(ValueError, match="'similarity'.*square"):
        fn(good[:4], 2)
    with pytest.raises(ValueError, match="'similarity'.*non-negative"):
        fn(good - 1.5, 2)
    bad = good.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="'similarity'"):
        fn(bad, 2)
    with pytest.raises(ValueError, match="'similarity'"):
        fn(good[0], 2)
    with pytest.raises(TypeError, match="'similarity'"):
        fn(good.long(), 2)
    with pytest.raises(TypeError, match="'similarity'"):
        fn(good.numpy(), 2)
    for budget in (0, 6):
        with pytest.raises(ValueError, match="'budget'"):
            fn(good, budget)
    with pytest.raises(TypeError, match="'budget'"):
        fn(good, 2.0)


# ---------------------------------------------------------------- OMP
def naive_ridge_omp(A, b, k, lam):
    """OMP with a fresh ridge solve every step (no incremental factorisation)."""
    support, r = [], b.copy()
    for _ in range(k):
        corr = np.abs(A.T @ r)
        corr[support] = -np.inf
        support.append(int(np.argmax(corr)))
        As = A[:, support]
        w = np.linalg.solve(As.T @ As + lam * np.eye(len(support)), As.T @ b)
        r = b - As @ w
    return support, w


@pytest.mark.parametrize("seed", range(4))
def test_plain_omp_equals_sklearn(seed):
    from sklearn.linear_model import orthogonal_mp

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((40, 120))
    b = rng.standard_normal(40)
    for k in (1, 5, 17):
        res = orthogonal_matching_pursuit(torch.from_numpy(A), torch.from_numpy(b), k)
        ref = orthogonal_mp(A, b, n_nonzero_coefs=k)
        assert set(res.support.tolist()) == set(np.flatnonzero(ref).tolist())
        np.testing.assert_allclose(res.coef.numpy(), ref[res.support.numpy()], rtol=1e-8, atol=1e-10)
        assert res.early_stop is None and res.n_iter == k
        np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b - A @ ref), rtol=1e-8)


@pytest.mark.parametrize("lam", [0.0, 0.5, 10.0])
def test_ridge_omp_equals_naive_and_closed_form(lam):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((30, 80))
    b = rng.standard_normal(30)
    res = orthogonal_matching_pursuit(torch.from_numpy(A), torch.from_numpy(b), 8, lam=lam)
    support, w = naive_ridge_omp(A, b, 8, lam)
    assert res.support.tolist() == support  # same picks, same order
    np.testing.assert_allclose(res.coef.numpy(), w, rtol=1e-8, atol=1e-12)
    if lam > 0:  # the regularisation is really applied: the coefficients shrink
        As = A[:, support]
        plain = np.linalg.lstsq(As, b, rcond=None)[0]
        assert np.linalg.norm(res.coef.numpy()) < np.linalg.norm(plain) - 1e-6


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_positive_omp_is_nnls_on_its_support_and_kkt(lam):
    from scipy.optimize import nnls

    rng = np.random.default_rng(7)
    A = rng.standard_normal((25, 60))
    b = A[:, :30] @ rng.random(30) / 30  # inside the cone of the atoms
    res = orthogonal_matching_pursuit(torch.from_numpy(A), torch.from_numpy(b), 10, positive=True, lam=lam)
    S = res.support.numpy()
    assert len(S) == 10 and len(set(S.tolist())) == 10
    assert np.all(res.coef.numpy() > 0)
    M = np.vstack([A[:, S], np.sqrt(lam) * np.eye(len(S))])
    ref, _ = nnls(M, np.concatenate([b, np.zeros(len(S))]))
    np.testing.assert_allclose(res.coef.numpy(), ref, rtol=1e-6, atol=1e-10)
    r = b - A[:, S] @ res.coef.numpy()
    np.testing.assert_allclose(A[:, S].T @ r, lam * res.coef.numpy(), atol=1e-8)  # KKT on the support


def test_positive_omp_only_picks_positive_correlations():
    A = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([2.0, 0.0], dtype=torch.float64)
    plain = orthogonal_matching_pursuit(A, b, 2)
    assert plain.support.tolist()[0] == 0  # |corr| ties between atoms 0 and 1: lowest index
    pos = orthogonal_matching_pursuit(A, b, 3, positive=True)
    assert pos.support.tolist() == [0]
    assert "positive correlation" in pos.early_stop
    assert pos.coef.tolist() == [2.0]


def test_omp_stops_at_tol_and_on_exact_fit():
    rng = np.random.default_rng(2)
    A = torch.from_numpy(rng.standard_normal((20, 50)))
    b = A[:, 3] + 2 * A[:, 7]
    res = orthogonal_matching_pursuit(A, b, 6, tol=1e-6)
    assert sorted(res.support.tolist()) == [3, 7]
    assert "tol" in res.early_stop and res.residual_norm <= 1e-6
    res = orthogonal_matching_pursuit(A, b, 6)
    assert sorted(res.support.tolist()) == [3, 7] and "orthogonal" in res.early_stop
    assert len(res.residual_norms) == res.n_iter == 2


def test_omp_rejects_bad_input():
    A = torch.randn(5, 8, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    cases = [
        (dict(A=A[0]), ValueError, "'A'"),
        (dict(b=b[:4]), ValueError, "'b'"),
        (dict(k=0), ValueError, "'k'"),
        (dict(k=9), ValueError, "'k'"),
        (dict(k=2.5), TypeError, "'k'"),
        (dict(lam=-1.0), ValueError, "'lam'"),
        (dict(tol=-1.0), ValueError, "'tol'"),
        (dict(positive=1), TypeError, "'positive'"),
        (dict(A=A.masked_fill(A > 1, float("nan"))), ValueError, "'A'"),
        (dict(b=b.long()), TypeError, "'b'"),
    ]
    for override, error, match in cases:
        kwargs = dict(A=A, b=b, k=3) | override
        with pytest.raises(error, match=match):
            orthogonal_matching_pursuit(kwargs.pop("A"), kwargs.pop("b"), kwargs.pop("k"), **kwargs)


# ---------------------------------------------------------------- CRAIG
def test_craig_hand_made_clusters():
    x = torch.tensor([0.0, 1.0, 2.0, 20.0, 21.0, 100.0, 101.0, 105.0, 130.0]).unsqueeze(1)
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1])
    sel = craig(x, y, 4)
    idx = sel.indices.tolist()
    assert idx[:2] == [2, 3]  # 2 serves {0, 1, 2}, then 3 serves {3, 4} (tie with 4: lowest index)
    assert sel.weights[:2].tolist() == [3.0, 2.0]
    # independent check: cluster size = points of the class whose nearest chosen point it is
    for c in (0, 1):
        rows = (y == c).nonzero().squeeze(1)
        chosen = [i for i in idx if int(y[i]) == c]
        nearest = torch.cdist(x[rows], x[chosen]).argmin(1)
        expected = torch.bincount(nearest, minlength=len(chosen)).float()
        got = torch.stack([sel.weights[idx.index(i)] for i in chosen])
        assert torch.equal(got, expected)
        assert float(got.sum()) == rows.numel()


@pytest.fixture(scope="module")
def digits_small():
    x, y = load_digits("train")
    keep = torch.cat([(y == c).nonzero().squeeze(1)[:30] for c in range(10)])
    x, y = x[keep], y[keep]
    model = MLP(64, 10, hidden=(16,), generator=0)
    return x, y, model


def test_craig_weights_sum_to_class_sizes_with_model_gradients(digits_small):
    x, y, model = digits_small
    sel = craig(x, y, 30, model=model)
    assert len(sel) == 30
    for c in range(10):
        in_c = y[sel.indices] == c
        assert float(sel.weights[in_c].sum()) == float((y == c).sum())
        assert bool((sel.weights[in_c] >= 1).all())
    same = craig(x, y, 30, features=gradient_embedding(model, x, y))
    assert torch.equal(sel.indices, same.indices) and torch.equal(sel.weights, same.weights)
    glob = craig(x, y, 30, model=model, per_class=False)
    assert float(glob.weights.sum()) == x.shape[0]


def test_craig_per_class_equals_facility_location_on_craig_similarity():
    gen = torch.Generator().manual_seed(4)
    g = torch.randn(60, 6, generator=gen, dtype=torch.float64)
    y = torch.arange(60) % 3
    sel = craig(g, y, 12, features=g)
    expected = []
    for c, k in class_budgets(y, 12).items():
        rows = (y == c).nonzero().squeeze(1)
        expected += rows[facility_location_naive(craig_similarity(g[rows]), k).indices].tolist()
    assert sel.indices.tolist() == expected


# ---------------------------------------------------------------- GradMatch
def class_features(seed=0, n=120, d=10, n_classes=3):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    centres = torch.randn(n_classes, d, generator=gen, dtype=torch.float64)
    return 2 * centres[y] + torch.randn(n, d, generator=gen, dtype=torch.float64), y


def relative_error(g, idx, w, rows):
    full = g[rows].sum(0)
    return float(torch.linalg.vector_norm((w.unsqueeze(1) * g[idx]).sum(0) - full) / torch.linalg.vector_norm(full))


def test_gradmatch_matches_the_class_gradients_better_than_random():
    g, y = class_features()
    sel = gradmatch(g, y, 15, features=g)
    assert len(sel) == 15 and bool((sel.weights > 0).all())
    for c in range(3):
        rows = (y == c).nonzero().squeeze(1)
        mine = y[sel.indices] == c
        err = relative_error(g, sel.indices[mine], sel.weights[mine].double(), rows)
        assert abs(err - sel.info["relative_error"][c]) < 1e-6
        rand = []
        for s in range(20):
            pick = rows[torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(s))[:5]]
            rand.append(relative_error(g, pick, torch.full((5,), rows.numel() / 5, dtype=torch.float64), rows))
        assert err < min(rand)


def test_gradmatch_weights_are_the_ridge_nnls_solution():
    from scipy.optimize import nnls

    g, y = class_features(seed=1)
    for lam in (0.1, 1.0):
        sel = gradmatch(g, y, 12, features=g, lam=lam)
        for c in range(3):
            rows = (y == c).nonzero().squeeze(1)
            chosen = sel.indices[y[sel.indices] == c]
            block = g[rows].numpy()
            lam_c = lam * float((block**2).sum(1).mean())
            assert abs(sel.info["lam_effective"][c] - lam_c) < 1e-9
            M = np.vstack([g[chosen].numpy().T, np.sqrt(lam_c) * np.eye(len(chosen))])
            ref, _ = nnls(M, np.concatenate([block.mean(0), np.zeros(len(chosen))]))
            # the NNLS-ridge coefficients, times n_c and the scale that best matches the mean
            fit = g[chosen].numpy().T @ ref
            scale = fit @ block.mean(0) / (fit @ fit)
            np.testing.assert_allclose(sel.weights[y[sel.indices] == c].numpy(), rows.numel() * scale * ref,
                                       rtol=1e-4)
    # the penalty changes the answer
    assert not torch.allclose(gradmatch(g, y, 12, features=g, lam=0.01).weights,
                              gradmatch(g, y, 12, features=g, lam=1.0).weights)


def test_gradmatch_early_stop_raises_or_is_reported_never_padded():
    gen = torch.Generator().manual_seed(0)
    g = torch.rand(40, 2, generator=gen, dtype=torch.float64) + 1.0  # 2-D: the mean is matched by 2 atoms
    y = torch.arange(40) % 2
    with pytest.raises(ValueError, match="'budget'.*stopped after"):
        gradmatch(g, y, 10, features=g, lam=0.0)
    sel = gradmatch(g, y, 10, features=g, lam=0.0, allow_fewer=True)
    assert len(sel) < 10
    assert sum(sel.info["n_selected_per_class"].values()) == len(sel)
    assert all(isinstance(reason, str) for reason in sel.info["early_stop"].values())
    assert bool((sel.weights > 0).all())
    # with the (default) ridge penalty every pick keeps improving: the budget is filled
    full = gradmatch(g, y, 10, features=g)
    assert len(full) == 10 and all(r is None for r in full.info["early_stop"].values())


def test_gradmatch_uses_model_gradients(digits_small):
    x, y, model = digits_small
    sel = gradmatch(x, y, 30, model=model)
    same = gradmatch(x, y, 30, features=gradient_embedding(model, x, y))
    assert torch.equal(sel.indices, same.indices)
    assert torch.allclose(sel.weights, same.weights)
    assert sel.info["feature_dim"] == 10 * (16 + 1)


@pytest.mark.parametrize("fn", [craig, gradmatch])
def test_gradient_methods_reject_bad_options(fn):
    g, y = class_features()
    with pytest.raises(TypeError, match="'progress'"):
        fn(g, y, 6, progress=1)
    if fn is gradmatch:
        with pytest.raises(ValueError, match="'lam'"):
            fn(g, y, 6, lam=-1.0)
        with pytest.raises(TypeError, match="'allow_fewer'"):
            fn(g, y, 6, allow_fewer="no")
