"""Checks for the coding exercise of the theory chapter.

* ``ex-multiindex-2``: :func:`check_two_layer_loss`, the squared loss of a two-layer network
  written out by hand, whose autograd gradient must be
  :func:`distillkit.theory.first_layer_gradient` (Damian, Lee & Soltanolkotabi, COLT 2022).
"""

from __future__ import annotations

import torch

from ..models import TwoLayerNet
from ..theory import first_layer_gradient
from ._check import Feedback, as_tensor, call, constant_factor, exercise_check, first_match

__all__ = ["check_two_layer_loss"]


def _loss(net, x, y, *, bias=True, relu=True):
    z = x @ net.W.T + (net.b if bias else 0.0)  # (n, L)
    return 0.5 * (((torch.relu(z) if relu else z) @ net.a - y) ** 2).mean()


def _grad(loss, net):
    return torch.autograd.grad(loss, net.W)[0]


@exercise_check("ex-multiindex-2", "two_layer_loss", "a scalar tensor differentiable in net.W")
def check_two_layer_loss(fn) -> str:
    """Check ``fn(net, x, y) -> loss``, the loss ``1/(2n) sum_i (f(x_i) - y_i)^2`` of a
    ``TwoLayerNet``: its value against the network's output, and its autograd gradient in
    ``W`` against ``first_layer_gradient``, at the symmetric initialisation and after
    perturbing ``a``.

    Parameters
    ----------
    fn : callable
        The student's ``two_layer_loss``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    net = TwoLayerNet(6, 8, generator=0).double()
    x, y = torch.randn(30, 6, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    for perturb in (0.0, 0.3):
        with torch.no_grad():
            net.a.add_(perturb)
        what = "at the symmetric initialisation" if perturb == 0 else "after perturbing a"
        loss = as_tensor(call(fn, net, x, y, case=f"a width-8 network on 30 points in dimension 6, {what}",
                              hint="W has shape (L, d) and x (n, d): the pre-activations are x @ W.T + b."),
                         "two_layer_loss")
        if loss.numel() != 1:
            raise Feedback(f"returned a tensor of shape {tuple(loss.shape)}, not a scalar",
                           "average the squared errors over the n examples.")
        with torch.no_grad():
            expected = 0.5 * ((net(x) - y) ** 2).mean()
        if not torch.allclose(loss.detach().reshape(()), expected, rtol=1e-10, atol=1e-12):
            c = constant_factor(loss, expected, rtol=1e-8)
            hints = {2.0: "the loss has 1/(2n): a factor 1/2 in front of the mean.",
                     float(len(x)): "average over the n examples (you summed them).",
                     2.0 * len(x): "the loss is 1/(2n) times the sum: a half, and a mean over the examples."}
            near = [h for v, h in hints.items() if c is not None and abs(c - v) < 1e-6 * v]
            hint = near[0] if near else first_match(loss.detach().reshape(()), [
                ("the first layer has a bias: sigma(W x + b).", _loss(net, x, y, bias=False).detach()),
                ("apply the ReLU to the pre-activations before the second layer.", _loss(net, x, y, relu=False).detach()),
            ], lambda a, b: torch.allclose(a, b, rtol=1e-10, atol=1e-12))
            raise Feedback(f"the loss value {what} differs from 1/(2n) sum (f(x_i) - y_i)^2",
                           hint or "f(x) = sum_j a_j relu(w_j . x + b_j); the loss averages the squared errors and "
                                   "halves them.")
        if not loss.requires_grad:
            raise Feedback("the loss carries no gradient", "compute it from net.W, net.b, net.a without detaching.")
        (grad,) = torch.autograd.grad(loss.reshape(()), net.W, allow_unused=True)
        if grad is None or not torch.allclose(grad, first_layer_gradient(net, x, y), atol=1e-12):
            hint = None if grad is None else first_match(grad, [
                ("the first layer has a bias: sigma(W x + b).", _grad(_loss(net, x, y, bias=False), net)),
                ("apply the ReLU to the pre-activations before the second layer.", _grad(_loss(net, x, y, relu=False), net)),
            ], lambda a, b: torch.allclose(a, b, atol=1e-12))
            raise Feedback(f"autograd's gradient in W {what} differs from first_layer_gradient",
                           hint or "build the loss from net.W itself (not a copy) so that autograd reaches it.")
    return "the loss and its autograd gradient match first_layer_gradient, at and away from the symmetric start."
