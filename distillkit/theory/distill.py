"""Distilling the two-stage training of a two-layer network on a multi-index task.

Kinoshita, Nishikawa & Toyoizumi (arXiv:2603.14830, 2026) analyse gradient-based dataset
distillation of this pipeline and bound the memory of the distilled data by
:math:`\\tilde\\Theta(r^2 d + L)`. We could read only their abstract; this module is our
reconstruction of such a pipeline, not their algorithm:

* **stage 1** (:func:`distill_first_layer_gradient`): learn :math:`m` pairs
  :math:`(\\tilde x_i, \\tilde y_i)` whose first-layer gradient at :math:`W_0` matches the
  one of the real data, in relative squared Frobenius error
  (:func:`gradient_matching_loss`), with Adam. One gradient step on them then gives the
  same :math:`W_1` as on the real data.
* **stage 2** (:func:`distill_second_layer`): a small set for the ridge fit of the second
  layer, either labels on inputs regenerated from a seed (closed-form label solve, as in
  KIP's "label solve"; stores :math:`m_2` numbers) or learned inputs and labels
  (KIP-style, Nguyen, Chen & Lee, ICLR 2021; stores :math:`m_2(d+1)` numbers).

With ReLU, :math:`\\sigma'` is a step function, so the matching loss reaches
:math:`\\tilde x` only through the trailing :math:`\\tilde x_i` factor of the gradient and
through :math:`\\tilde y`; a softplus network gives it a smooth path through the
activation pattern as well.
"""

from __future__ import annotations

import torch

from .._validation import check_bool, check_float, check_generator, check_int, check_option, check_tensor, fail
from ..models import TwoLayerNet
from ..types import SyntheticSet
from .multi_index import MultiIndexTask
from .two_stage import ACTIVATIONS, _check_data, _check_net, _gradient, _sigma

__all__ = ["gradient_matching_loss", "distill_first_layer_gradient", "distill_second_layer"]


def gradient_matching_loss(g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """Relative squared Frobenius error :math:`\\lVert G_{syn} - G_{real}\\rVert_F^2 /
    \\lVert G_{real}\\rVert_F^2` (a 0-d tensor, differentiable in ``g_syn``).

    Parameters
    ----------
    g_syn, g_real : Tensors of shape (L, d)
        The gradient on the synthetic set and the target gradient on the real data.

    Examples
    --------
    >>> float(gradient_matching_loss(torch.zeros(2, 2), torch.ones(2, 2)))
    1.0
    """
    func = "gradient_matching_loss"
    g_syn = check_tensor(g_syn, "g_syn", func, ndim=2, floating=True, finite=False)
    g_real = check_tensor(g_real, "g_real", func, ndim=2, floating=True, finite=False)
    if g_syn.shape != g_real.shape:
        fail(func, "g_syn", f"a tensor of the shape of g_real {tuple(g_real.shape)}", g_syn)
    return ((g_syn - g_real) ** 2).sum() / (g_real**2).sum().clamp_min(1e-30)


def _real_data(data, d: int, n_real: int, gen, func: str):
    if isinstance(data, MultiIndexTask):
        if data.d != d:
            fail(func, "data", f"a task with d = {d} (the network's input dimension)", f"<a task with d = {data.d}>")
        return data.sample(n_real, generator=gen)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        fail(func, "data", "a MultiIndexTask or a tuple (x, y)", data, error=TypeError)
    return _check_data(data[0], data[1], d, func, "data[0]", "data[1]")


def distill_first_layer_gradient(
    data,
    net: TwoLayerNet,
    m: int,
    *,
    steps: int = 500,
    lr: float = 0.05,
    init: str = "real",
    n_real: int = 4000,
    learn_labels: bool = True,
    generator=None,
    callback=None,
    progress: bool = False,
) -> SyntheticSet:
    """Learn ``m`` points whose first-layer gradient at the network's weights matches the
    real one.

    Minimises :func:`gradient_matching_loss` between
    :math:`\\nabla_W \\hat{\\mathcal L}_{\\mathcal S}(W_0)` on the synthetic set and
    :math:`\\nabla_W \\hat{\\mathcal L}_{\\mathcal T}(W_0)` on the real data, over
    :math:`\\tilde x` and (if ``learn_labels``) :math:`\\tilde y`, with Adam.

    Parameters
    ----------
    data : MultiIndexTask or tuple (x, y)
        The real data, or a task from which ``n_real`` examples are drawn with ``generator``.
        ``x`` has shape (n, d), ``y`` shape (n,).
    net : TwoLayerNet
        The initialisation :math:`(W_0, b_0, a_0)`; it is not modified.
    m : int
        Number of synthetic points, at least 1 (at most n for ``init="real"``).
    steps : int
        Adam steps.
    lr : float
        Adam learning rate.
    init : {"real", "noise"}
        Start from ``m`` random real examples, or from :math:`N(0, I_d)` inputs with
        :math:`N(0, \\mathrm{Var}(y))` labels.
    n_real : int
        Sample size when ``data`` is a task.
    learn_labels : bool
        Train the synthetic labels too (otherwise they keep their initial values).
    generator : torch.Generator, int or None
        Source of the initial points (and of the real sample drawn from a task).
    callback : callable, optional
        ``callback(step, x_syn, y_syn, loss)`` after every step (tensors detached).
    progress : bool
        Show a progress bar.

    Returns
    -------
    SyntheticSet
        ``x`` (m, d) and ``y`` (m,) float; ``info`` holds ``losses`` (one per step),
        ``relative_error`` (final loss), ``init_indices`` (for ``init="real"``) and the
        options.

    References
    ----------
    Kinoshita, Nishikawa & Toyoizumi, arXiv:2603.14830 (2026) (the setting; this
    algorithm is our reconstruction). Zhao, Mopuri & Bilen, "Dataset Condensation with
    Gradient Matching", ICLR 2021 (gradient matching).

    Examples
    --------
    >>> task = MultiIndexTask(8, 2, generator=0)
    >>> net = TwoLayerNet(8, 16, generator=0)
    >>> syn = distill_first_layer_gradient(task, net, 4, steps=20, n_real=500, generator=0)
    >>> tuple(syn.x.shape), len(syn.info["losses"])
    ((4, 8), 20)
    """
    func = "distill_first_layer_gradient"
    net = _check_net(net, func)
    d = net.W.shape[1]
    m = check_int(m, "m", func, low=1)
    steps = check_int(steps, "steps", func, low=0)
    lr = check_float(lr, "lr", func, low=0.0, low_open=True)
    init = check_option(init, "init", func, ("real", "noise"))
    n_real = check_int(n_real, "n_real", func, low=1)
    learn_labels = check_bool(learn_labels, "learn_labels", func)
    progress = check_bool(progress, "progress", func)
    if callback is not None and not callable(callback):
        fail(func, "callback", "a callable or None", callback, error=TypeError)
    gen = check_generator(generator, func)
    x, y = _real_data(data, d, n_real, gen, func)
    if init == "real" and m > x.shape[0]:
        fail(func, "m", f"at most the number of real examples ({x.shape[0]}) for init='real'", m)

    W, b, a = (p.detach().to(x) for p in (net.W, net.b, net.a))
    name = net.activation
    g_real = _gradient(W, b, a, name, x, y)  # (L, d)
    info = {"init": init, "steps": steps, "lr": lr, "learn_labels": learn_labels, "activation": name}
    if init == "real":
        idx = torch.randperm(x.shape[0], generator=gen)[:m]
        x_syn, y_syn = x[idx.to(x.device)].clone(), y[idx.to(y.device)].clone()
        info["init_indices"] = idx
    else:
        x_syn = torch.randn(m, d, generator=gen).to(x)
        y_syn = (y.std() * torch.randn(m, generator=gen).to(y)) + y.mean()
    x_syn.requires_grad_(True)
    y_syn.requires_grad_(learn_labels)
    params = [x_syn, y_syn] if learn_labels else [x_syn]
    optimizer = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    loop = range(steps)
    if progress:
        from tqdm.auto import tqdm

        loop = tqdm(loop, desc=func)
    for step in loop:
        loss = gradient_matching_loss(_gradient(W, b, a, name, x_syn, y_syn), g_real)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, x_syn.detach(), y_syn.detach(), losses[-1])
    with torch.no_grad():
        final = float(gradient_matching_loss(_gradient(W, b, a, name, x_syn, y_syn), g_real))
    info.update(losses=losses, relative_error=final, n_real=int(x.shape[0]))
    return SyntheticSet(
        x=x_syn.detach(), y=y_syn.detach(), method="gradient-matching (first layer, one step)", info=info
    )


def _ridge_operator(phi2: torch.Tensor, lam: float) -> torch.Tensor:
    """A with a(y2) = A y2 for the ridge fit on features phi2 (m2, L): A is (L, m2)."""
    m2, width = phi2.shape
    gram = phi2.T @ phi2 / m2 + lam * torch.eye(width, dtype=phi2.dtype, device=phi2.device)
    return torch.linalg.solve(gram, phi2.T / m2)  # (L, L) \ (L, m2) -> (L, m2)


def _label_solve(phi2, phi, y, lam):
    """Labels y2 minimising (1/n)||phi A y2 - y||^2 + lam ||A y2||^2 (least squares)."""
    A = _ridge_operator(phi2, lam)  # (L, m2)
    n = phi.shape[0]
    lhs = torch.cat([phi @ A / n**0.5, lam**0.5 * A])  # (n + L, m2)
    rhs = torch.cat([y / n**0.5, torch.zeros(A.shape[0], dtype=y.dtype, device=y.device)])
    return torch.linalg.lstsq(lhs, rhs[:, None], driver="gelsd" if lhs.device.type == "cpu" else None).solution[:, 0]


def distill_second_layer(
    W: torch.Tensor,
    b: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    m2: int,
    *,
    activation: str = "relu",
    lam: float = 1e-3,
    learn_inputs: bool = False,
    steps: int = 300,
    lr: float = 0.05,
    generator=None,
) -> SyntheticSet:
    """A small training set for the second stage (the ridge fit of ``a`` on fixed ``W``, ``b``).

    ``learn_inputs=False``: the inputs are :math:`m_2` Gaussian points drawn from
    ``generator`` (so they can be regenerated from the seed and need not be stored), and the
    labels are the closed-form minimisers of the real data's ridge objective
    :math:`\\frac1n\\lVert\\Phi\\, a(\\tilde y) - y\\rVert^2 + \\lambda\\lVert a(\\tilde
    y)\\rVert^2`, where :math:`a(\\tilde y)` is the ridge fit on the synthetic set. With
    :math:`m_2 \\ge L` generic inputs this reproduces the full-data ridge solution.

    ``learn_inputs=True``: inputs start at random real examples and inputs and labels are
    then trained together by Adam on that objective (KIP-style).

    Parameters
    ----------
    W : Tensor of shape (L, d)
        The fixed first layer.
    b : Tensor of shape (L,)
        The fixed biases.
    x : Tensor of shape (n, d)
        Real inputs whose ridge objective the synthetic set must reproduce.
    y : Tensor of shape (n,)
        Their targets.
    m2 : int
        Number of synthetic points, at least 1.
    activation : {"relu", "softplus", "tanh"}
        The activation of the features.
    lam : float
        The ridge parameter used by the second stage.
    learn_inputs : bool
        Learn the inputs as well (KIP-style) instead of drawing them from ``generator``.
    steps, lr : int, float
        Adam steps and learning rate (``learn_inputs=True`` only).
    generator : torch.Generator, int or None
        Source of the synthetic inputs (drawn, or the real examples they start from).

    Returns
    -------
    SyntheticSet
        ``x`` (m2, d), ``y`` (m2,); ``info["a"]`` is the second layer that the ridge fit on
        the set gives, ``info["stored_numbers"]`` what must be stored (``m2`` or
        ``m2 * (d + 1)``), ``info["losses"]``.

    References
    ----------
    Nguyen, Chen & Lee, "Dataset Meta-Learning from Kernel Ridge-Regression", ICLR 2021.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> W, b, x = torch.randn(6, 4, generator=g), torch.randn(6, generator=g), torch.randn(40, 4, generator=g)
    >>> syn = distill_second_layer(W, b, x, x[:, 0] ** 2, 6, generator=0)
    >>> tuple(syn.x.shape), syn.info["stored_numbers"]
    ((6, 4), 6)
    """
    func = "distill_second_layer"
    W = check_tensor(W, "W", func, ndim=2, floating=True, min_rows=1)
    b = check_tensor(b, "b", func, ndim=1, floating=True)
    if b.shape[0] != W.shape[0]:
        fail(func, "b", f"a tensor with one entry per row of W ({W.shape[0]})", b)
    x, y = _check_data(x, y, W.shape[1], func)
    m2 = check_int(m2, "m2", func, low=1)
    name = check_option(activation, "activation", func, ACTIVATIONS)
    lam = check_float(lam, "lam", func, low=0.0, low_open=True)
    learn_inputs = check_bool(learn_inputs, "learn_inputs", func)
    steps = check_int(steps, "steps", func, low=0)
    lr = check_float(lr, "lr", func, low=0.0, low_open=True)
    gen = check_generator(generator, func)
    d = W.shape[1]
    Wd, bd, yd = W.detach().double(), b.detach().double(), y.double()
    phi = _sigma(x.double() @ Wd.T + bd, name)  # (n, L)
    losses: list[float] = []
    if not learn_inputs:
        x2 = torch.randn(m2, d, generator=gen, dtype=torch.float64).to(x.device)
        y2 = _label_solve(_sigma(x2 @ Wd.T + bd, name), phi, yd, lam)
        stored = m2
    else:
        if m2 > x.shape[0]:
            fail(func, "m2", f"at most the number of real examples ({x.shape[0]}) for learn_inputs=True", m2)
        idx = torch.randperm(x.shape[0], generator=gen)[:m2]
        x2 = x.double()[idx.to(x.device)].clone().requires_grad_(True)
        with torch.no_grad():
            y2 = _label_solve(_sigma(x2 @ Wd.T + bd, name), phi, yd, lam)
        y2.requires_grad_(True)
        optimizer = torch.optim.Adam([x2, y2], lr=lr)
        for _ in range(steps):
            a = _ridge_operator(_sigma(x2 @ Wd.T + bd, name), lam) @ y2
            loss = ((phi @ a - yd) ** 2).mean() + lam * (a**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        x2, y2 = x2.detach(), y2.detach()
        stored = m2 * (d + 1)
    a = _ridge_operator(_sigma(x2 @ Wd.T + bd, name), lam) @ y2
    info = {"a": a.to(W.dtype), "stored_numbers": stored, "losses": losses, "learn_inputs": learn_inputs, "lam": lam}
    return SyntheticSet(x=x2.to(x.dtype), y=y2.to(y.dtype), method="second-layer distillation", info=info)
