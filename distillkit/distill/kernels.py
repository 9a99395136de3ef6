"""Kernels for Kernel Inducing Points: the empirical neural tangent kernel and an RBF kernel.

KIP (Nguyen, Chen & Lee, ICLR 2021; Nguyen, Novak, Xiao & Lee, NeurIPS 2021) fits kernel
ridge regression with the neural tangent kernel (NTK; Jacot, Gabriel & Hongler, "Neural
Tangent Kernel", NeurIPS 2018) of an infinitely wide network, computed with neural-tangents
(JAX). Here the kernels are ones a laptop can compute (our reconstruction):

* the *empirical* NTK ``J(a) J(b)^T`` of a small finite network (default a one-hidden-layer
  MLP of width 128 with one output), averaged over random initialisations, with the
  Jacobians from :mod:`torch.func` (:func:`ntk_features`, :func:`empirical_ntk`);
* a Gaussian kernel whose bandwidth is the median pairwise distance of a sample of the real
  data, the median heuristic (:func:`median_bandwidth`).

:func:`make_kernel` turns either, or any callable ``(a, b) -> Gram matrix``, into the kernel
on flattened inputs that :func:`~distillkit.distill.kip.kip` uses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from .._validation import check_generator, check_int, check_option, check_tensor, fail
from ._base import _seed
from .losses import gaussian_kernel

__all__ = ["empirical_ntk", "ntk_features", "median_bandwidth", "make_kernel"]


def ntk_features(models, x: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    r"""Features :math:`\phi(x)` whose inner products are the averaged empirical NTK:
    :math:`\phi(a)\cdot\phi(b) = \frac{1}{MC}\sum_{m=1}^{M}\sum_{c=1}^{C} \nabla_\theta f^m_c(a)
    \cdot \nabla_\theta f^m_c(b)` (the trace NTK of C outputs, averaged over M networks).

    Parameters
    ----------
    models : nn.Module or sequence of nn.Module
        Networks with C outputs each (all the same C).
    x : Tensor of shape (n, ...)
        Inputs in the shape the networks take. Gradients flow back to ``x``.
    chunk : int
        Examples per vectorised Jacobian call (memory).

    Returns
    -------
    Tensor of shape (n, M * C * P)

    References
    ----------
    A. Jacot, F. Gabriel, C. Hongler, "Neural Tangent Kernel", NeurIPS 2018.

    Examples
    --------
    >>> net = torch.nn.Linear(3, 1)
    >>> ntk_features(net, torch.ones(2, 3)).tolist()  # d f / d(weight, bias) = (x, 1)
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    """
    return _ntk_features(_check_models(models, "ntk_features"), _check_x(x, "x", "ntk_features"),
                         check_int(chunk, "chunk", "ntk_features", low=1))


def _check_models(models, func: str, param: str = "models") -> list[nn.Module]:
    expectation = "an nn.Module or a non-empty sequence of nn.Module"
    if isinstance(models, nn.Module):
        return [models]
    if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
        fail(func, param, expectation, models, error=TypeError)
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        fail(func, param, expectation, models, error=TypeError if models else ValueError)
    return models


def _check_x(x, param: str, func: str, *, min_rows: int = 1) -> torch.Tensor:
    """A float32/float64 tensor of shape (n, ...) with data (not meta), finite, at least ``min_rows`` rows."""
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    if isinstance(x, torch.Tensor) and x.dim() < 1:
        fail(func, param, "a tensor of shape (n, ...) with one row per example", x)
    x = check_tensor(x, param, func, floating=True, min_rows=min_rows)
    if x.dtype not in (torch.float32, torch.float64):
        fail(func, param, "a float32 or float64 tensor", x, error=TypeError)
    return x


def _ntk_features(models, x, chunk):
    parts = []
    for model in models:
        params = {k: v.detach() for k, v in model.named_parameters()}
        buffers = dict(model.named_buffers())

        def f(p, xi):  # one example -> its C outputs
            return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0)

        rows = []
        for start in range(0, x.shape[0], chunk):
            jac = vmap(jacrev(f), in_dims=(None, 0))(params, x[start:start + chunk])  # name -> (b, C, *shape)
            rows.append(torch.cat([j.flatten(2) for j in jac.values()], dim=2))  # (b, C, P)
        feats = torch.cat(rows)  # (n, C, P)
        parts.append(feats.flatten(1) / feats.shape[1] ** 0.5)  # (n, C*P), trace NTK / C
    return torch.cat(parts, dim=1) / len(parts) ** 0.5  # (n, M*C*P)


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
    """The empirical (trace) NTK ``(1/C) sum_c J_c(x1) J_c(x2)^T`` of one network.

    Parameters
    ----------
    model : nn.Module
        A network with one output.
    x1 : Tensor of shape (n1, ...)
        First set of inputs.
    x2 : Tensor of shape (n2, ...), optional (default ``x1``)
        Second set of inputs; default ``x1``.

    Returns
    -------
    Tensor of shape (n1, n2)

    Examples
    --------
    >>> net = torch.nn.Linear(2, 1)
    >>> empirical_ntk(net, torch.tensor([[1.0, 2.0], [0.0, 1.0]])).tolist()  # a.b + 1
    [[6.0, 3.0], [3.0, 2.0]]
    """
    func = "empirical_ntk"
    if not isinstance(model, nn.Module):
        fail(func, "model", "an nn.Module", model, error=TypeError)
    x1 = _check_x(x1, "x1", func)
    if x2 is not None:
        x2 = _check_x(x2, "x2", func)
        if x2.shape[1:] != x1.shape[1:]:
            fail(func, "x2", f"a tensor of shape (n2, {', '.join(map(str, x1.shape[1:]))}) like x1", x2)
    _check_accepts(model, x1, func, "x1")
    was_training = model.training
    model.eval()
    try:
        f1 = _ntk_features([model], x1, 256)
        f2 = f1 if x2 is None else _ntk_features([model], x2, 256)
    finally:
        model.train(was_training)
    return f1 @ f2.T


def _check_accepts(model: nn.Module, x: torch.Tensor, func: str, param: str) -> None:
    """One forward pass of ``model`` on the first example of ``x``: refuse what it cannot take."""
    try:
        with torch.no_grad():
            model(x[:1])
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        fail(func, param, "inputs the model accepts (its device, dtype and input shape)",
             f"<a tensor of shape {tuple(x.shape)} and dtype {x.dtype} ({(str(exc).splitlines() or [''])[0][:160]})>")


def median_bandwidth(x: torch.Tensor, *, max_points: int = 1000, generator=None) -> float:
    """Median pairwise Euclidean distance of (a random sample of at most ``max_points`` of) ``x``.

    The bandwidth must be positive: ``x`` needs at least two rows, and a median distance of 0
    (more than half of the pairs coincide) is refused, as is any NaN, rather than returned.

    Parameters
    ----------
    x : Tensor of shape (n, ...), n >= 2
        Points whose median pairwise distance sets the bandwidth.
    max_points : int
        At least 2.
    generator : torch.Generator, int or None
        Draws the sample when ``n > max_points``.

    Returns
    -------
    float
        Positive and finite.

    Examples
    --------
    >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
    2.0
    """
    func = "median_bandwidth"
    x = _check_x(x, "x", func, min_rows=2)
    max_points = check_int(max_points, "max_points", func, low=2)
    gen = check_generator(generator, func)
    return _median_bandwidth(x, max_points, gen, func)


def _median_bandwidth(x, max_points: int, gen: torch.Generator, func: str) -> float:
    flat = x.detach().reshape(x.shape[0], -1)
    if flat.shape[0] > max_points:
        flat = flat[torch.randperm(flat.shape[0], generator=gen)[:max_points].to(x.device)]
    if flat.shape[0] < 2:
        fail(func, "x", "a tensor with at least 2 rows (the bandwidth is a median pairwise distance)", x)
    d = torch.cdist(flat, flat)
    i, j = torch.triu_indices(flat.shape[0], flat.shape[0], offset=1)
    value = float(d[i, j].median())
    if not (value > 0 and value < float("inf")):
        fail(func, "x", "data whose median pairwise distance is positive and finite (the Gaussian kernel's "
             "bandwidth)", f"<a median pairwise distance of {value} (most rows coincide, or they overflow)>")
    return value


def _default_ntk_model_fn(x: torch.Tensor):
    from ..models import MLP

    return lambda generator=None: MLP(x[0].numel(), 1, hidden=(128,), generator=generator)


def _ntk_models(model_fn, x, n_models, gen, func):
    model_fn = _default_ntk_model_fn(x) if model_fn is None else model_fn
    if not callable(model_fn):
        fail(func, "model_fn", "a callable model_fn(generator=...) returning an nn.Module", model_fn, error=TypeError)
    models = []
    for _ in range(n_models):
        model = model_fn(generator=_seed(gen))
        if not isinstance(model, nn.Module):
            fail(func, "model_fn", "a callable returning an nn.Module", model, error=TypeError)
        models.append(model.to(device=x.device, dtype=x.dtype).eval())
    try:
        with torch.no_grad():
            models[0](x[:2])
    except (RuntimeError, ValueError) as exc:
        fail(func, "x", "inputs the network built by model_fn accepts", f"<a tensor of shape {tuple(x.shape)} ({exc})>")
    return models


def make_kernel(kernel, x: torch.Tensor, *, model_fn=None, n_models: int = 4, generator=None):
    """The kernel callable ``(a, b) -> Gram matrix`` that :func:`~distillkit.distill.kip.kip` uses, on flattened inputs
    (as :func:`~distillkit.distill.losses.kernel_ridge` passes them).

    Parameters
    ----------
    kernel : {"ntk", "rbf"} or callable
        The empirical NTK of ``model_fn``, a Gaussian (RBF) kernel, or a callable ``k(a, b)`` used
        as it is.
    x : Tensor of shape (n, ...)
        Real data: fixes the input shape (NTK) or the bandwidth (RBF, median heuristic).
    model_fn : callable, optional
        Network of the empirical NTK (default: one-hidden-layer MLP, width 128, 1 output).
    n_models : int
        Random initialisations the NTK is averaged over.
    generator : torch.Generator, int or None
        Source of the NTK's network initialisations.

    Returns
    -------
    callable

    Examples
    --------
    >>> k = make_kernel("rbf", torch.randn(50, 3), generator=0)
    >>> k(torch.zeros(2, 3), torch.zeros(4, 3)).shape
    torch.Size([2, 4])
    """
    func = "make_kernel"
    kind = _check_kernel(kernel, func)
    if kind != "callable":
        x = _check_x(x, "x", func, min_rows=2 if kind == "rbf" else 1)
    gen = check_generator(generator, func)
    n_models = check_int(n_models, "n_models", func, low=1)
    return _make_kernel(kernel, kind, x, model_fn, n_models, gen, func)[0]


def _make_kernel(kernel, kind, x, model_fn, n_models, gen, func):
    """(kernel callable, the NTK's networks or None) for validated arguments."""
    if kind == "callable":
        return kernel, None
    if kind == "rbf":
        return gaussian_kernel(_median_bandwidth(x, 1000, gen, func)), None
    models, shape = _ntk_models(model_fn, x, n_models, gen, func), x.shape[1:]

    def ntk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = _ntk_features(models, a.reshape(-1, *shape), 256)
        fb = fa if b is a else _ntk_features(models, b.reshape(-1, *shape), 256)
        return fa @ fb.T

    return ntk, models


def _check_kernel(kernel, func):
    if callable(kernel) and not isinstance(kernel, str):
        return "callable"
    if not isinstance(kernel, str):
        fail(func, "kernel", "'ntk', 'rbf' or a callable (a, b) -> Gram matrix", kernel, error=TypeError)
    return check_option(kernel, "kernel", func, ("ntk", "rbf"))


def _linear(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b.T
