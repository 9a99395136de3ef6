"""Differentiable unrolled SGD: a training run as a function of its data and step sizes.

Both bilevel distillation methods differentiate a short run of plain SGD: Dataset
Distillation (Wang, Zhu, Torralba & Efros, arXiv:1811.10959, 2018) back-propagates the loss
of the trained network on real data to the synthetic images and the step sizes, and Matching
Training Trajectories (Cazenavette et al., CVPR 2022) back-propagates the distance to an
expert's parameters. Differentiating through the steps of gradient descent goes back to
Maclaurin, Duvenaud & Adams, "Gradient-based Hyperparameter Optimization through Reversible
Learning" (ICML 2015).

The parameters live in one flat vector ``theta`` (P,) and the network is evaluated
functionally (:func:`torch.func.functional_call`), so every step ``theta - lr * grad`` is an
ordinary tensor operation that autograd records, second-order terms included. With
``checkpoint=True`` each step is re-computed during the backward pass
(``torch.utils.checkpoint``): memory for one step's activations instead of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from .._validation import fail

__all__ = ["unroll_sgd"]


def _flat_params(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached vector, in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _unflatten(model: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Views of the flat vector ``theta`` (P,) shaped like ``model``'s parameters, plus buffers."""
    out = dict(model.named_buffers())
    named = list(model.named_parameters())
    for (name, p), part in zip(named, theta.split([p.numel() for _, p in named])):  # one split: one cat backward
        out[name] = part.view_as(p)
    return out


def _sgd_step(model: nn.Module, theta: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, lr: torch.Tensor):
    """One differentiable step theta - lr * grad CE (the graph of the gradient is kept)."""
    loss = F.cross_entropy(functional_call(model, _unflatten(model, theta), (xb,)), yb)
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    return theta - lr * grad


def unroll_sgd(model: nn.Module, theta: torch.Tensor, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
               lrs: torch.Tensor, *, checkpoint: bool = False) -> torch.Tensor:
    r"""Differentiable plain SGD on cross-entropy: :math:`\theta_{k+1} = \theta_k - \eta_k
    \nabla_\theta \mathrm{CE}(f(x_k; \theta_k), y_k)` for ``k = 0 .. T-1``.

    The result carries the autograd graph of every step, so it can be differentiated with
    respect to the batches' inputs, the step sizes and ``theta``. The network is evaluated
    functionally (:func:`torch.func.functional_call`); ``model``'s own parameters only
    give the shapes.

    Parameters
    ----------
    model : nn.Module
        The architecture.
    theta : Tensor of shape (P,)
        Starting parameters, flattened in ``model.named_parameters()`` order.
    batches : sequence of T pairs (x_k, y_k)
        Inputs ``(b_k, ...)`` and int64 labels ``(b_k,)`` of each step.
    lrs : Tensor of shape (T,)
        Step sizes.
    checkpoint : bool
        Re-compute each step during the backward pass (``torch.utils.checkpoint``): memory
        for one step's activations instead of T, at the price of a second forward pass.

    Returns
    -------
    Tensor of shape (P,)
        :math:`\theta_T`.

    References
    ----------
    T. Wang, J.-Y. Zhu, A. Torralba, A. A. Efros, "Dataset Distillation", arXiv:1811.10959, 2018.

    Examples
    --------
    >>> net = torch.nn.Linear(3, 2)
    >>> theta = torch.zeros(8)
    >>> batch = (torch.ones(4, 3), torch.zeros(4, dtype=torch.int64))
    >>> unroll_sgd(net, theta, [batch], torch.tensor([1.0])).tolist()
    [0.5, 0.5, 0.5, -0.5, -0.5, -0.5, 0.5, -0.5]
    """
    func = "unroll_sgd"
    if not isinstance(model, nn.Module):
        fail(func, "model", "an nn.Module", model, error=TypeError)
    if not isinstance(batches, Sequence) or isinstance(batches, (str, bytes)):
        fail(func, "batches", "a sequence of (x_k, y_k) pairs", batches, error=TypeError)
    for k, pair in enumerate(batches):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, torch.Tensor) for t in pair)):
            fail(func, "batches", f"a sequence of (x_k, y_k) pairs of tensors (item {k})", pair, error=TypeError)
    for name, t in (("theta", theta), ("lrs", lrs)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            fail(func, name, "a floating-point torch.Tensor", t, error=TypeError)
        if t.device.type == "meta":
            fail(func, name, "a tensor with data (not on the meta device)",
                 f"<a meta tensor of shape {tuple(t.shape)}>")
    if len(batches) != lrs.numel():
        fail(func, "lrs", f"a tensor with one step size per batch ({len(batches)})", lrs)
    n_params = sum(p.numel() for p in model.parameters())
    if theta.dim() != 1 or theta.numel() != n_params:
        fail(func, "theta", f"a flat tensor of the model's {n_params} parameters", theta)
    if not theta.requires_grad:  # the steps differentiate the loss with respect to theta
        theta = theta.detach().requires_grad_(True)
    for (xb, yb), lr in zip(batches, lrs.reshape(-1)):
        if checkpoint:
            theta = _checkpoint(_sgd_step, model, theta, xb, yb, lr, use_reentrant=False)
        else:
            theta = _sgd_step(model, theta, xb, yb, lr)
    return theta
