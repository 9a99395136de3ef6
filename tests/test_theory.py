"""Tests of distillkit.theory: multi-index tasks, two-stage training, its distillation and
the diagnostics. Oracles: autograd for the closed-form gradient, torch.linalg.lstsq for
ridge regression, scipy for principal angles, Stein's lemma (exact population gradient)
and a derived noise level for the concentration of the first-layer gradient."""

import math

import pytest
import scipy.linalg
import torch

from distillkit.models import TwoLayerNet
from distillkit.theory import (
    LINKS,
    MultiIndexTask,
    activation_derivative,
    distill_first_layer_gradient,
    distill_second_layer,
    expected_hessian_mc,
    first_layer_gradient,
    first_layer_step,
    fit_second_layer,
    gradient_matching_loss,
    make_link,
    memory_ledger,
    outside_fraction,
    population_first_layer_gradient,
    principal_angles,
    random_fraction_baseline,
    random_subspace,
    relative_mse,
    ridge_fit,
    subspace_fraction,
    two_stage_train,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are tiny: one thread avoids oversubscription on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- tasks and links
@pytest.mark.parametrize("d,r", [(1, 1), (7, 3), (40, 5)])
def test_random_subspace_is_orthonormal_and_deterministic(d, r):
    U = random_subspace(d, r, generator=3)
    assert U.shape == (d, r)
    assert torch.allclose(U.T @ U, torch.eye(r), atol=1e-6)
    assert torch.equal(U, random_subspace(d, r, generator=3))
    assert not torch.equal(U, random_subspace(d, r, generator=4))


def test_random_subspace_sign_fix_makes_r_positive():
    U = random_subspace(6, 3, generator=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(6, 3, generator=g, dtype=torch.float64)
    # U^T gauss is the R factor of a QR decomposition with positive diagonal
    R = U.T @ gauss
    assert torch.allclose(U @ R, gauss, atol=1e-10)
    assert (torch.diagonal(R) > 0).all()
    assert torch.allclose(torch.tril(R, -1), torch.zeros(3, 3, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("link", LINKS)
def test_label_depends_on_x_only_through_projection(link):
    task = MultiIndexTask(12, 3, link=link, generator=0)
    x, y = task.sample(200, generator=1)
    g = torch.Generator().manual_seed(2)
    noise = 3.0 * torch.randn(200, 12, generator=g)
    orth = noise - (noise @ task.U) @ task.U.T  # orthogonal to span(U)
    assert torch.allclose(task.target(x + orth), y, atol=1e-4)
    inside = (noise @ task.U) @ task.U.T
    assert not torch.allclose(task.target(x + inside), y, atol=1e-2)


def test_noise_std_and_determinism():
    task = MultiIndexTask(8, 2, noise_std=0.5, generator=0)
    x, y = task.sample(20000, generator=1)
    assert torch.equal(y, task.sample(20000, generator=1)[1])
    resid = y - task.target(x)
    assert abs(float(resid.std()) - 0.5) < 0.02


@pytest.mark.parametrize(
    "name,r",
    [("quadratic", 1), ("quadratic", 2), ("quadratic", 3), ("he2", 2), ("tanh_sum", 2), ("product", 2), ("product", 3)],
)
def test_expected_hessian_matches_stein_monte_carlo(name, r):
    link = make_link(name, r)
    mc = expected_hessian_mc(link, n_samples=400_000, generator=0)
    assert torch.allclose(mc, link.hessian, atol=0.05), (mc, link.hessian)


def test_quadratic_link_has_full_rank_hessian_and_hand_values():
    assert make_link("quadratic", 2).hessian.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    for r in range(1, 7):
        assert abs(abs(float(torch.linalg.det(make_link("quadratic", r).hessian))) - 1.0) < 1e-9
    z = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(make_link("quadratic", 3)(z)) == pytest.approx(0.0 + 2.0 + 6.0)
    assert float(make_link("product", 3)(z)) == pytest.approx(6.0)


def test_task_expected_hessian_is_lifted():
    task = MultiIndexTask(10, 2, generator=5)
    H = task.expected_hessian()
    assert torch.allclose(task.U.double().T @ H @ task.U.double(), task.link.hessian, atol=1e-6)
    assert int(torch.linalg.matrix_rank(H)) == 2


# ---------------------------------------------------------------- two-stage training
@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh"])
def test_first_layer_gradient_equals_autograd(activation):
    net = TwoLayerNet(6, 10, activation=activation, generator=0).double()
    with torch.no_grad():
        net.a.add_(0.1)  # not symmetric any more: f != 0, the residual term matters
    task = MultiIndexTask(6, 2, generator=1)
    x, y = (t.double() for t in task.sample(50, generator=2))
    loss = 0.5 * ((net(x) - y) ** 2).mean()
    (auto,) = torch.autograd.grad(loss, net.W)
    assert torch.allclose(first_layer_gradient(net, x, y), auto, atol=1e-12)


def test_ridge_fit_equals_lstsq_on_augmented_system():
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(30, 8, generator=g, dtype=torch.float64)
    y = torch.randn(30, generator=g, dtype=torch.float64)
    lam = 0.3
    aug = torch.cat([phi / math.sqrt(30), math.sqrt(lam) * torch.eye(8, dtype=torch.float64)])
    rhs = torch.cat([y / math.sqrt(30), torch.zeros(8, dtype=torch.float64)])
    expected = torch.linalg.lstsq(aug, rhs[:, None]).solution[:, 0]
    assert torch.allclose(ridge_fit(phi, y, lam), expected, atol=1e-10)


def test_first_layer_step_normalises_and_erases_w0():
    net = TwoLayerNet(5, 8, generator=0)
    x, y = MultiIndexTask(5, 2, generator=0).sample(300, generator=1)
    G = first_layer_gradient(net, x, y)
    w1 = first_layer_step(net, x, y, eta=2.0, normalize=False)
    assert torch.allclose(w1, -2.0 * G)
    w1n = first_layer_step(net, x, y)
    assert torch.allclose(w1n.norm(dim=1), torch.ones(8), atol=1e-5)
    assert torch.allclose(w1n, -G / G.norm(dim=1, keepdim=True), atol=1e-6)


def test_two_stage_learns_the_task_and_random_features_do_not():
    task = MultiIndexTask(16, 2, generator=0)
    x, y = task.sample(4000, generator=1)
    xt, yt = task.sample(2000, generator=2)
    net = TwoLayerNet(16, 128, generator=0)
    full = relative_mse(two_stage_train(net, x, y, generator=0).predict(xt), yt)
    rf = relative_mse(fit_second_layer(net.W.detach(), x, y, generator=0).predict(xt), yt)
    assert full < 0.1 and rf > 0.4, (full, rf)
    fit = two_stage_train(net, x, y, generator=0)
    assert torch.equal(fit.a, two_stage_train(net, x, y, generator=0).a)


# ---------------------------------------------------------------- concentration in span(U)
def _sample64(task, n, seed):
    x, y = task.sample(n, generator=seed)
    return x.double(), y.double()


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_gradient_concentrates_on_population_value_at_rate_one_over_sqrt_n(activation):
    task = MultiIndexTask(16, 2, generator=0)
    net = TwoLayerNet(16, 64, activation=activation, generator=0).double()
    Gp = population_first_layer_gradient(net, task)
    W, b, a = (p.detach() for p in (net.W, net.b, net.a))
    errors = []
    for n in (4000, 64000):
        sq_err, sq_pred = 0.0, 0.0
        for seed in (1, 2, 3):  # average over draws: one draw fluctuates by ~20%
            x, y = _sample64(task, n, seed)
            G = first_layer_gradient(net, x, y)
            # predicted: E||G - Gp||^2 = (E||g_i||^2 - ||Gp||^2) / n, per-example g_i of rank one
            coef = y[:, None] * activation_derivative(x @ W.T + b, activation) * a  # (n, L)
            sq_pred += (float(((coef**2).sum(1) * (x**2).sum(1)).mean()) - float((Gp**2).sum())) / n
            sq_err += float(((G - Gp) ** 2).sum())
        assert 0.85 < math.sqrt(sq_err / sq_pred) < 1.15, (n, sq_err, sq_pred)
        errors.append(math.sqrt(sq_err))
    assert 3.0 < errors[0] / errors[1] < 5.3  # 16x the data: 4x smaller error


def test_gradient_lies_in_span_u_up_to_predicted_noise():
    d, r = 48, 2
    task = MultiIndexTask(d, r, generator=0)
    net = TwoLayerNet(d, 32, generator=0).double()
    W, b, a = (p.detach() for p in (net.W, net.b, net.a))
    U = task.U.double()
    assert outside_fraction(population_first_layer_gradient(net, task), U, own=W) < 1e-6
    residuals = []
    for n in (2000, 32000):
        sq_meas, sq_pred, sq_abs = 0.0, 0.0, 0.0
        for seed in (7, 8, 9):
            x, y = _sample64(task, n, seed)
            G = first_layer_gradient(net, x, y)
            # the part of x orthogonal to span(U) and to w_j is independent of y and of
            # w_j.x: pure noise with E||.||^2 = (d - r - 1)/n * sum_j a_j^2 E[y^2 relu'^2]
            m2 = ((y[:, None] * activation_derivative(x @ W.T + b, "relu")) ** 2).mean(0)
            sq_pred += (d - r - 1) / n * float((a**2 * m2).sum()) / float((G**2).sum())
            sq_meas += outside_fraction(G, U, own=W) ** 2
            sq_abs += (outside_fraction(G, U, own=W) * float(G.norm())) ** 2
        assert 0.85 < math.sqrt(sq_meas / sq_pred) < 1.15, (n, sq_meas, sq_pred)
        residuals.append(math.sqrt(sq_abs / 3))
    assert 3.2 < residuals[0] / residuals[1] < 5.0  # the residual norm falls like 1/sqrt(n): 16x the data
    assert outside_fraction(G, U) > outside_fraction(G, U, own=W)  # the self term w_j is outside


def test_population_gradient_rejects_non_symmetric_and_other_links():
    task = MultiIndexTask(6, 2, generator=0)
    with pytest.raises(ValueError, match="'net' parameter"):
        population_first_layer_gradient(TwoLayerNet(6, 8, symmetric=False, generator=0), task)
    with pytest.raises(ValueError, match="'task' parameter"):
        population_first_layer_gradient(TwoLayerNet(6, 8, generator=0), MultiIndexTask(6, 2, link="tanh_sum"))


# ---------------------------------------------------------------- distillation
def test_distilled_set_reproduces_the_gradient_it_matches():
    task = MultiIndexTask(8, 2, generator=0)
    x, y = task.sample(2000, generator=1)
    net = TwoLayerNet(8, 32, activation="softplus", generator=0)
    syn = distill_first_layer_gradient((x, y), net, 24, steps=400, lr=0.05, generator=0)
    G, Gs = first_layer_gradient(net, x, y), first_layer_gradient(net, syn.x, syn.y)
    rel = float(gradient_matching_loss(Gs, G))
    assert rel < 0.05, rel
    assert rel == pytest.approx(syn.info["relative_error"], rel=1e-5)
    assert syn.info["losses"][0] > 10 * rel  # it learned: the random start was far
    again = distill_first_layer_gradient((x, y), net, 24, steps=400, lr=0.05, generator=0)
    assert torch.equal(syn.x, again.x) and torch.equal(syn.y, again.y)


def test_distillation_from_task_and_noise_init_and_frozen_labels():
    task = MultiIndexTask(8, 2, generator=0)
    net = TwoLayerNet(8, 16, generator=0)
    syn = distill_first_layer_gradient(
        task, net, 5, steps=30, n_real=500, init="noise", learn_labels=False, generator=1
    )
    syn2 = distill_first_layer_gradient(
        task, net, 5, steps=0, n_real=500, init="noise", learn_labels=False, generator=1
    )
    assert torch.equal(syn.y, syn2.y) and not torch.equal(syn.x, syn2.x)
    assert syn.info["losses"][-1] < syn.info["losses"][0]


def test_second_stage_label_solve_with_l_points_reproduces_full_ridge():
    torch.manual_seed(0)  # not used by the library; guards against accidental global draws
    task = MultiIndexTask(6, 2, generator=0)
    x, y = _sample64(task, 3000, 1)
    g = torch.Generator().manual_seed(3)
    W, b = torch.randn(12, 6, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    full = fit_second_layer(W, x, y, bias=b, lam=1e-2)
    syn = distill_second_layer(W, b, x, y, 12, lam=1e-2, generator=0)
    assert syn.info["stored_numbers"] == 12
    assert torch.allclose(syn.info["a"], full.a, atol=1e-6)
    refit = fit_second_layer(W, syn.x, syn.y, bias=b, lam=1e-2)
    assert torch.allclose(refit.a, full.a, atol=1e-6)
    small = distill_second_layer(W, b, x, y, 4, lam=1e-2, generator=0)
    rnd = fit_second_layer(W, x[:4], y[:4], bias=b, lam=1e-2)
    err = [relative_mse(f.predict(x), y) for f in (full, fit_second_layer(W, small.x, small.y, bias=b, lam=1e-2), rnd)]
    assert err[0] <= err[1] + 1e-9 and err[1] < err[2]


def test_second_stage_kip_improves_on_its_start():
    task = MultiIndexTask(6, 2, generator=0)
    x, y = task.sample(1000, generator=1)
    g = torch.Generator().manual_seed(3)
    W, b = torch.randn(16, 6, generator=g), torch.randn(16, generator=g)
    syn = distill_second_layer(W, b, x, y, 6, learn_inputs=True, steps=60, lr=0.05, generator=0)
    assert syn.info["stored_numbers"] == 6 * 7
    assert syn.info["losses"][-1] < syn.info["losses"][0]


# ---------------------------------------------------------------- diagnostics
def test_subspace_fraction_and_random_baseline():
    U = torch.eye(4)[:, :1]
    frac = subspace_fraction(torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]), U)
    assert torch.allclose(frac, torch.tensor([0.6, 0.0]))
    task = MultiIndexTask(32, 2, generator=0)
    x, _ = task.sample(40000, generator=1)
    mc = float(subspace_fraction(x, task.U).mean())
    assert abs(mc - random_fraction_baseline(32, 2)) < 0.005
    assert random_fraction_baseline(5, 5) == 1.0
    x, _ = MultiIndexTask(10, 7, generator=0).sample(40000, generator=1)
    assert (
        abs(float(subspace_fraction(x, random_subspace(10, 7, generator=2)).mean()) - random_fraction_baseline(10, 7))
        < 0.005
    )
    # large d: E||z_r|| / sqrt(d) with z_r ~ N(0, I_r)
    chi_mean = math.sqrt(2) * math.exp(math.lgamma(2.5) - math.lgamma(2.0))
    assert random_fraction_baseline(40000, 4) == pytest.approx(chi_mean / 200, rel=1e-3)


def test_principal_angles_match_scipy():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(20, 9, generator=g, dtype=torch.float64)
    U = random_subspace(9, 3, generator=1, dtype=torch.float64)
    _, _, vh = torch.linalg.svd(A, full_matrices=False)
    expected = sorted(scipy.linalg.subspace_angles(vh[:3].T.numpy(), U.numpy()))
    assert torch.allclose(principal_angles(A, U), torch.tensor(expected, dtype=torch.float64), atol=1e-8)
    assert float(principal_angles(torch.cat([U.T, U.T]), U).max()) < 1e-6


def test_memory_ledger_arithmetic():
    led = memory_ledger(64, 2, 128, m=32, n_real=16384, m2=128, stage2="labels")
    assert (led.stage1, led.stage2, led.distilled, led.real, led.reference) == (2080, 128, 2208, 1064960, 384)
    assert led.compression == pytest.approx(1064960 / 2208)
    assert memory_ledger(8, 1, 4, m=2, n_real=10, m2=3, stage2="points").stage2 == 27
    assert memory_ledger(8, 1, 4, m=2, n_real=10).stage2 == 0
    assert set(led.as_dict()) == {"stage1", "stage2", "distilled", "real", "reference", "compression"}


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call,param",
    [
        (lambda: random_subspace(3, 4), "'r' parameter of random_subspace"),
        (lambda: random_subspace(3, 0), "'r' parameter of random_subspace"),
        (lambda: random_subspace(0, 1), "'d' parameter of random_subspace"),
        (lambda: MultiIndexTask(4, 5), "'r' parameter of MultiIndexTask"),
        (lambda: MultiIndexTask(4, 2, link="cubic"), "'link' parameter of MultiIndexTask"),
        (lambda: MultiIndexTask(4, 2, link=make_link("he2", 3)), "'link' parameter of MultiIndexTask"),
        (lambda: MultiIndexTask(4, 2, noise_std=-1.0), "'noise_std' parameter"),
        (lambda: MultiIndexTask(4, 2, U=torch.ones(4, 2)), "'U' parameter of MultiIndexTask"),
        (lambda: MultiIndexTask(4, 2, U=torch.eye(3)[:, :2]), "'U' parameter of MultiIndexTask"),
        (lambda: make_link("quadratic", 0), "'r' parameter of make_link"),
        (lambda: MultiIndexTask(4, 2).sample(0), "'n' parameter"),
        (lambda: ridge_fit(torch.ones(3, 2), torch.ones(3), 0.0), "'lam' parameter of ridge_fit"),
        (lambda: ridge_fit(torch.ones(3, 2), torch.ones(4), 1.0), "'y' parameter of ridge_fit"),
        (lambda: first_layer_gradient(TwoLayerNet(4, 4), torch.ones(2, 3), torch.ones(2)), "'x' parameter"),
        (lambda: memory_ledger(4, 5, 2, m=1, n_real=1), "'r' parameter of memory_ledger"),
        (lambda: principal_angles(torch.ones(3, 4), torch.ones(5, 1)), "'U' parameter of principal_angles"),
    ],
)
def test_bad_values_raise_value_error(call, param):
    with pytest.raises(ValueError, match=param):
        call()


def test_bad_distillation_arguments():
    task = MultiIndexTask(4, 2, generator=0)
    net = TwoLayerNet(4, 8, generator=0)
    x, y = task.sample(10, generator=0)
    with pytest.raises(ValueError, match="'m' parameter of distill_first_layer_gradient"):
        distill_first_layer_gradient((x, y), net, 0)
    with pytest.raises(ValueError, match="'m' parameter of distill_first_layer_gradient"):
        distill_first_layer_gradient((x, y), net, 11)
    with pytest.raises(ValueError, match="'data' parameter"):
        distill_first_layer_gradient(MultiIndexTask(5, 2), net, 2)
    with pytest.raises(TypeError, match="'data' parameter"):
        distill_first_layer_gradient(x, net, 2)
    with pytest.raises(TypeError, match="'net' parameter"):
        distill_first_layer_gradient((x, y), torch.nn.Linear(4, 1), 2)
    with pytest.raises(ValueError, match="'init' parameter"):
        distill_first_layer_gradient((x, y), net, 2, init="zeros")
    with pytest.raises(ValueError, match="'m2' parameter of distill_second_layer"):
        distill_second_layer(torch.ones(3, 4), torch.ones(3), x, y, 0)
    with pytest.raises(ValueError, match="'b' parameter of distill_second_layer"):
        distill_second_layer(torch.ones(3, 4), torch.ones(2), x, y, 2)
    with pytest.raises(TypeError, match="'r' parameter of random_subspace"):
        random_subspace(4, 2.0)


def test_activations_refuse_unknown_names_instead_of_tanh():
    # issue 14: any unknown name used to give tanh silently
    from distillkit.theory import TwoLayerFit, activation_derivative, apply_activation

    z = torch.tensor([-1.0, 0.5])
    for fn in (apply_activation, activation_derivative):
        with pytest.raises(ValueError, match=rf"'name' parameter of {fn.__name__} must be one of 'relu'"):
            fn(z, "gelu")
    assert torch.allclose(apply_activation(z, "tanh"), torch.tanh(z))
    with pytest.raises(ValueError, match="'activation' parameter of TwoLayerFit"):
        TwoLayerFit(torch.ones(2, 3), torch.ones(2), torch.ones(2), "sigmoid")


def test_random_subspace_refuses_integer_dtypes():
    from distillkit.theory import random_subspace

    with pytest.raises(ValueError, match="'dtype' parameter of random_subspace must be a floating torch.dtype"):
        random_subspace(4, 2, dtype=torch.int64)
    U = random_subspace(4, 2, generator=0, dtype=torch.float64)
    assert U.dtype == torch.float64 and torch.allclose(U.T @ U, torch.eye(2, dtype=torch.float64))
