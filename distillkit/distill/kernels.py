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

from .._validation import check_generator, check_int, check_option, fail
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
    models = [models] if isinstance(models, nn.Module) else list(models)
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
    x1 : Tensor of shape (n1, ...)
    x2 : Tensor of shape (n2, ...), optional (default ``x1``)

    Returns
    -------
    Tensor of shape (n1, n2)

    Examples
    --------
    >>> net = torch.nn.Linear(2, 1)
    >>> empirical_ntk(net, torch.tensor([[1.0, 2.0], [0.0, 1.0]])).tolist()  # a.b + 1
    [[6.0, 3.0], [3.0, 2.0]]
    """
    if not isinstance(model, nn.Module):
        fail("empirical_ntk", "model", "an nn.Module", model, error=TypeError)
    was_training = model.training
    model.eval()
    f1 = ntk_features(model, x1)
    f2 = f1 if x2 is None else ntk_features(model, x2)
    model.train(was_training)
    return f1 @ f2.T


def median_bandwidth(x: torch.Tensor, *, max_points: int = 1000, generator=None) -> float:
    """Median pairwise Euclidean distance of (a random sample of at most ``max_points`` of) ``x``.

    Examples
    --------
    >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
    2.0
    """
    gen = check_generator(generator, "median_bandwidth")
    flat = x.detach().reshape(x.shape[0], -1)
    if flat.shape[0] > max_points:
        flat = flat[torch.randperm(flat.shape[0], generator=gen)[:max_points].to(x.device)]
    d = torch.cdist(flat, flat)
    i, j = torch.triu_indices(flat.shape[0], flat.shape[0], offset=1)
    return float(d[i, j].median())


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
    x : Tensor of shape (n, ...)
        Real data: fixes the input shape (NTK) or the bandwidth (RBF, median heuristic).
    model_fn : callable, optional
        Network of the empirical NTK (default: one-hidden-layer MLP, width 128, 1 output).
    n_models : int
        Random initialisations the NTK is averaged over.
    generator : torch.Generator, int or None

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
    gen = check_generator(generator, func)
    n_models = check_int(n_models, "n_models", func, low=1)
    return _make_kernel(kernel, _check_kernel(kernel, func), x, model_fn, n_models, gen, func)[0]


def _make_kernel(kernel, kind, x, model_fn, n_models, gen, func):
    """(kernel callable, the NTK's networks or None) for validated arguments."""
    if kind == "callable":
        return kernel, None
    if kind == "rbf":
        return gaussian_kernel(median_bandwidth(x, generator=gen)), None
    models, shape = _ntk_models(model_fn, x, n_models, gen, func), x.shape[1:]

    def ntk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = ntk_features(models, a.reshape(-1, *shape))
        fb = fa if b is a else ntk_features(models, b.reshape(-1, *shape))
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
