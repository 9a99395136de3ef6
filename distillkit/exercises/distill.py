"""Checks for the coding exercises of the dataset-distillation chapters; the library is the oracle.

* ``ex-matching-2``: :func:`check_dm_loss_one_forward`, the distribution-matching loss with
  one forward pass for all real batches, against
  :func:`distillkit.distill.distribution_matching_loss` (Zhao & Bilen, WACV 2023).
* ``ex-unrolled-2``: :func:`check_kip_label_gradient`, the closed-form gradient of the KIP
  loss with respect to the support labels, against autograd through
  :func:`distillkit.distill.kernel_ridge` (Nguyen, Chen & Lee, ICLR 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from ..distill import distribution_matching_loss, gaussian_kernel, kernel_ridge
from ..models import ConvNet
from ._check import Feedback, as_tensor, call, constant_factor, exercise_check, first_match

__all__ = ["check_dm_loss_one_forward", "check_kip_label_gradient"]


class _CountingNet(nn.Module):
    """A ConvNet that counts how often ``embed`` and ``forward`` are called."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.embed_calls, self.forward_calls = net, 0, 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.embed_calls += 1
        return self.net.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return self.net(x)


def _dm_variants(net, real_batches, x_syn, y_syn):
    with torch.no_grad():
        f_real = [net.embed(b) for b in real_batches]
        f_syn = net.embed(x_syn)
    mu_r = torch.stack([f.mean(0) for f in f_real])  # (C, d)
    mu_s = torch.stack([f_syn[y_syn == c].mean(0) for c in range(len(real_batches))])  # (C, d)
    mu_all = torch.cat(f_real).mean(0)  # (d,) the pooled real mean
    ipc = len(x_syn) // len(real_batches)
    return [
        ("take the mean of each class's real embeddings separately, not of all real embeddings together.",
         ((mu_all - mu_s) ** 2).sum()),
        ("the loss is a sum of squared distances: do not take the norm (square root).", (mu_r - mu_s).norm(dim=1).sum()),
        ("select each class's synthetic embeddings with y_syn == c; do not assume they are sorted by class.",
         ((mu_r - f_syn.reshape(len(real_batches), ipc, -1).mean(1)) ** 2).sum()),
    ]


@exercise_check("ex-matching-2", "dm_loss_one_forward", "a scalar tensor, differentiable in x_syn")
def check_dm_loss_one_forward(fn) -> str:
    """Check ``fn(net, real_batches, x_syn, y_syn) -> loss`` against the per-class distribution
    matching loss: the value, the gradient with respect to ``x_syn`` and the number of
    ``net.embed`` calls (one for all real batches, one for the synthetic set).

    Parameters
    ----------
    fn : callable
        The student's ``dm_loss_one_forward``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    net = _CountingNet(ConvNet(1, 3, im_size=8, width=8, depth=1, generator=0))
    real_batches = [torch.randn(n, 1, 8, 8, generator=g) for n in (5, 7, 6)]  # three classes, unequal batches
    y_syn = torch.arange(3).repeat(2)  # (6,) classes interleaved: 0, 1, 2, 0, 1, 2
    x_syn = torch.randn(6, 1, 8, 8, generator=g).requires_grad_(True)
    loss = call(fn, net, [b.clone() for b in real_batches], x_syn, y_syn,
                case="3 classes, real batches of 5, 7 and 6 images, 2 synthetic images per class")
    loss = as_tensor(loss, "dm_loss_one_forward")
    if loss.numel() != 1:
        raise Feedback(f"returned a tensor of shape {tuple(loss.shape)}, not a scalar",
                       "sum the squared differences over classes and features.")
    calls, forwards = net.embed_calls, net.forward_calls
    expected = sum(distribution_matching_loss(net.net.embed(b), net.net.embed(x_syn[y_syn == c]))
                   for c, b in enumerate(real_batches))
    if forwards:
        raise Feedback("your function calls net(...), which returns logits",
                       "distribution matching compares embeddings: use net.embed(...).")
    if not torch.allclose(loss.detach(), expected.detach(), rtol=1e-5, atol=1e-7):
        c = constant_factor(loss, expected)
        hint = first_match(loss.detach(), _dm_variants(net.net, real_batches, x_syn, y_syn),
                           lambda a, b: torch.allclose(a.reshape(()), b, rtol=1e-5, atol=1e-7))
        if hint is None and c is not None:
            hint = (f"your loss is {c:.3g} times the expected one: sum the squared differences over features and "
                    "classes, as dm_loss does; do not average them.")
        raise Feedback("the loss value differs from the per-class DM loss", hint or
                       "per class c: mean real embedding minus mean synthetic embedding, squared, summed over "
                       "features and classes.")
    if calls > 2:
        raise Feedback(f"net.embed was called {calls} times",
                       "concatenate the real batches (torch.cat), embed them once, and split the embeddings back "
                       "with torch.split and the batch sizes.")
    if not loss.requires_grad:
        raise Feedback("the loss carries no gradient to x_syn",
                       "only the real side goes under torch.no_grad(); the synthetic embeddings must stay in the graph.")
    (grad,) = torch.autograd.grad(loss.reshape(()), x_syn, allow_unused=True)
    (grad_expected,) = torch.autograd.grad(expected, x_syn)
    if grad is None or not torch.allclose(grad, grad_expected, rtol=1e-4, atol=1e-7):
        raise Feedback("the gradient with respect to x_syn is wrong",
                       "do not detach the synthetic embeddings; the real side should be the only constant.")
    return "the per-class DM loss and its gradient, with one forward pass for all real batches."


def _kip_gradient(kernel, x_s, y_s, x_t, y_t, reg, *, scale_reg=True):
    k_ss = kernel(x_s, x_s)  # (n_s, n_s)
    lam = reg * k_ss.trace() / len(x_s) if scale_reg else reg
    a = kernel(x_t, x_s) @ torch.linalg.inv(k_ss + lam * torch.eye(len(x_s), dtype=k_ss.dtype))  # (n_t, n_s)
    return a.T @ (a @ y_s - y_t) / y_t.numel()  # (n_s, C)


@exercise_check("ex-unrolled-2", "kip_label_gradient", "a tensor of the shape of y_s: the gradient of the KIP loss")
def check_kip_label_gradient(fn) -> str:
    """Check ``fn(kernel, x_s, y_s, x_t, y_t, reg) -> dL/dy_s`` for the KIP loss
    ``0.5 * mean((kernel_ridge(x_s, y_s, x_t, kernel, reg) - y_t) ** 2)`` against autograd.

    Parameters
    ----------
    fn : callable
        The student's ``kip_label_gradient``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    gaussian = gaussian_kernel(2.0)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # mean diagonal 3, so the reg scaling matters
        return 3.0 * gaussian(a, b)

    for n_s, n_t, reg in ((8, 20, 1e-2), (5, 12, 1e-6)):
        x_s, x_t = torch.randn(n_s, 5, generator=g, dtype=torch.float64), torch.randn(n_t, 5, generator=g, dtype=torch.float64)
        y_s, y_t = torch.randn(n_s, 3, generator=g, dtype=torch.float64), torch.randn(n_t, 3, generator=g, dtype=torch.float64)
        y_leaf = y_s.clone().requires_grad_(True)
        loss = 0.5 * ((kernel_ridge(x_s, y_leaf, x_t, kernel, reg) - y_t) ** 2).mean()
        (expected,) = torch.autograd.grad(loss, y_leaf)
        out = call(fn, kernel, x_s, y_s.clone(), x_t, y_t, reg,
                   case=f"{n_s} support and {n_t} target points, 3 outputs, reg={reg}",
                   hint="shapes: K_BS is (n_t, n_s), A = K_BS (K_SS + lambda' I)^-1 is (n_t, n_s), the gradient "
                        "(n_s, C).")
        out = as_tensor(out, "kip_label_gradient", shape=(n_s, 3)).detach()
        if torch.allclose(out, expected, rtol=1e-6, atol=1e-10):
            continue
        c = constant_factor(out, expected)
        if c is not None:
            hints = {-1.0: "the residual is prediction minus target (A y_s - y_t).",
                     2.0: "the loss has a factor 1/2: d/dr of r^2 / 2 is r.",
                     float(y_t.numel()): "the loss is a mean: divide by the number of entries of the residual.",
                     float(y_t.shape[1]): "the mean runs over all n_t * C entries of the residual, not only "
                                          "over the n_t rows."}
            near = [h for v, h in hints.items() if abs(c - v) < 1e-3 * abs(v)]
            raise Feedback(f"your gradient is {c:.4g} times autograd's",
                           near[0] if near else "look for a constant factor in the loss (the 1/2 and the mean).")
        if reg > 1e-4 and torch.allclose(out, _kip_gradient(kernel, x_s, y_s, x_t, y_t, reg, scale_reg=False),
                                         rtol=1e-6, atol=1e-10):
            raise Feedback("the gradient differs when the regulariser matters",
                           "kernel_ridge scales reg by the mean diagonal tr(K_SS) / n_s.")
        raise Feedback("your gradient differs from autograd's",
                       "use the chain rule: the gradient with respect to Y_hat is (Y_hat - y_t) divided by the "
                       "number of entries, and Y_hat = A y_s is linear in y_s.")
    return "the closed-form label gradient equals autograd through kernel_ridge."
