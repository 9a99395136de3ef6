"""Two-stage training of a two-layer network, after Damian, Lee & Soltanolkotabi (COLT 2022).

The network is :math:`f(x) = \\sum_{j=1}^L a_j \\sigma(w_j^\\top x + b_j)` with a symmetric
initialisation (:class:`distillkit.models.TwoLayerNet`), so :math:`f \\equiv 0` at
:math:`W_0`. With the squared loss :math:`\\hat{\\mathcal L}(W) = \\frac{1}{2n}\\sum_i
(f(x_i) - y_i)^2`:

1. **Stage 1**, one large step on the first layer with weight decay :math:`\\lambda` and
   :math:`\\eta\\lambda = 1`, which erases :math:`W_0`:
   :math:`W_1 = W_0 - \\eta(\\nabla_W \\hat{\\mathcal L}(W_0) + \\lambda W_0) = -\\eta
   \\nabla_W \\hat{\\mathcal L}(W_0)`; we normalise the rows of :math:`W_1` (our choice).
2. **Stage 2**, re-draw the biases and fit the second layer :math:`a` by ridge regression
   in closed form (:mod:`distillkit.theory.ridge`).

The row normalisation, the bias scale and the ridge parameter are our choices; the
papers' exact constants were not available to us.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_option, check_tensor, fail
from ..models import TwoLayerNet
from .ridge import _ridge

__all__ = [
    "ACTIVATIONS",
    "apply_activation",
    "activation_derivative",
    "first_layer_gradient",
    "first_layer_step",
    "TwoLayerFit",
    "fit_second_layer",
    "two_stage_train",
]

ACTIVATIONS = ("relu", "softplus", "tanh")


def _check_activation_args(z, name, func: str) -> torch.Tensor:
    name = check_option(name, "name", func, ACTIVATIONS)
    return check_tensor(z, "z", func, floating=True, finite=False)


def apply_activation(z: torch.Tensor, name: str) -> torch.Tensor:
    """:math:`\\sigma(z)` for ``name`` in ``ACTIVATIONS`` (elementwise).

    Parameters
    ----------
    z : floating Tensor of any shape
        Pre-activations.
    name : {"relu", "softplus", "tanh"}
        Any other name is an error (never a silent fallback).

    Examples
    --------
    >>> apply_activation(torch.tensor([-1.0, 2.0]), "relu")
    tensor([0., 2.])
    """
    z = _check_activation_args(z, name, "apply_activation")
    return _sigma(z, name)


def activation_derivative(z: torch.Tensor, name: str) -> torch.Tensor:
    """:math:`\\sigma'(z)` (elementwise). For ReLU this is the step :math:`1[z > 0]`,
    whose gradient with respect to ``z`` is zero. ``name`` as in :func:`apply_activation`.

    Parameters
    ----------
    z : floating Tensor of any shape
        Pre-activations.
    name : {"relu", "softplus", "tanh"}
        The activation whose derivative is taken.

    Examples
    --------
    >>> activation_derivative(torch.tensor([-1.0, 2.0]), "relu")
    tensor([0., 1.])
    """
    z = _check_activation_args(z, name, "activation_derivative")
    return _sigma_prime(z, name)


def _sigma(z: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return torch.relu(z)
    if name == "softplus":
        return F.softplus(z)
    if name == "tanh":
        return torch.tanh(z)
    raise AssertionError(f"unchecked activation {name!r}")  # callers validate name


def _sigma_prime(z: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "softplus":
        return torch.sigmoid(z)
    if name == "tanh":
        return 1.0 - torch.tanh(z) ** 2
    raise AssertionError(f"unchecked activation {name!r}")  # callers validate name


def _check_net(net, func: str) -> TwoLayerNet:
    if not isinstance(net, TwoLayerNet):
        fail(func, "net", "a distillkit.models.TwoLayerNet", net, error=TypeError)
    return net


def _check_data(x, y, d: int, func: str, xname: str = "x", yname: str = "y", like: torch.Tensor | None = None):
    """``like``: the weights ``x`` and ``y`` meet in a product, whose dtype and device they must share."""
    x = check_tensor(x, xname, func, ndim=2, floating=True, min_rows=1)
    if x.shape[1] != d:
        fail(func, xname, f"a tensor with {d} columns (the network's input dimension)", x)
    y = check_tensor(y, yname, func, ndim=1, floating=True)
    if y.shape[0] != x.shape[0]:
        fail(func, yname, f"a tensor with one label per row of {xname} ({x.shape[0]} rows)", y)
    if like is not None:
        for name, t in ((xname, x), (yname, y)):
            if t.dtype != like.dtype:
                fail(func, name, f"a tensor of the weights' dtype {like.dtype}", t, error=TypeError)
            if t.device != like.device:
                fail(func, name, f"a tensor on the weights' device {like.device}", f"<a tensor on {t.device}>")
    return x, y


def _gradient(W, b, a, name, x, y):
    pre = x @ W.T + b  # (n, d) @ (d, L) -> (n, L)
    residual = _sigma(pre, name) @ a - y  # f(x) - y, (n,)
    coef = residual[:, None] * _sigma_prime(pre, name) * a  # (n, L)
    return coef.T @ x / x.shape[0]  # (L, n) @ (n, d) -> (L, d)


def first_layer_gradient(net: TwoLayerNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`\\nabla_W \\hat{\\mathcal L}` for the squared loss, in closed form.

    :math:`\\nabla_{w_j} \\hat{\\mathcal L} = \\frac1n \\sum_i (f(x_i) - y_i)\\, a_j\\,
    \\sigma'(w_j^\\top x_i + b_j)\\, x_i`. The result is differentiable with respect to
    ``x`` and ``y`` (what gradient-matching distillation needs).

    Parameters
    ----------
    net : TwoLayerNet
        Its current ``W`` (L, d), ``b`` (L,), ``a`` (L,) and activation are used.
    x : Tensor of shape (n, d)
        Inputs of the loss.
    y : Tensor of shape (n,)
        Targets of the loss.

    Returns
    -------
    Tensor of shape (L, d)

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022.

    Examples
    --------
    >>> net, g = TwoLayerNet(4, 6, generator=0), torch.Generator().manual_seed(0)
    >>> first_layer_gradient(net, torch.randn(3, 4, generator=g), torch.randn(3, generator=g)).shape
    torch.Size([6, 4])
    """
    return _checked_gradient(net, x, y, "first_layer_gradient")


def _checked_gradient(net, x, y, func: str) -> torch.Tensor:
    net = _check_net(net, func)
    x, y = _check_data(x, y, net.W.shape[1], func, like=net.W)
    return _gradient(net.W.detach(), net.b.detach(), net.a.detach(), net.activation, x, y)


def first_layer_step(
    net: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, *, eta: float = 1.0, normalize: bool = True
) -> torch.Tensor:
    """Stage 1: :math:`W_1 = -\\eta\\, \\nabla_W \\hat{\\mathcal L}(W_0)` (weight decay with
    :math:`\\eta\\lambda = 1`), rows normalised to unit length if ``normalize``.

    Parameters
    ----------
    net : TwoLayerNet
        The network at its initialisation :math:`W_0`; its ``W``, ``b``, ``a`` and activation are
        used, not changed.
    x : Tensor of shape (n, d)
        Inputs of the first-layer step (real or distilled).
    y : Tensor of shape (n,)
        Their targets.
    eta : float
        Step size (irrelevant when ``normalize``).
    normalize : bool
        Scale every row of :math:`W_1` to unit Euclidean length.

    Returns
    -------
    W1 : Tensor of shape (L, d)

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022 (Algorithm 1, first step).

    Examples
    --------
    >>> net, g = TwoLayerNet(4, 6, generator=0), torch.Generator().manual_seed(0)
    >>> W1 = first_layer_step(net, torch.randn(50, 4, generator=g), torch.randn(50, generator=g))
    >>> torch.allclose(W1.norm(dim=1), torch.ones(6))
    True
    """
    return _checked_step(net, x, y, eta, normalize, "first_layer_step")


def _checked_step(net, x, y, eta, normalize, func: str) -> torch.Tensor:
    eta = check_float(eta, "eta", func, low=0.0, low_open=True)
    normalize = check_bool(normalize, "normalize", func)
    w1 = -eta * _checked_gradient(net, x, y, func)
    if normalize:
        w1 = w1 / w1.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return w1


@dataclass(frozen=True)
class TwoLayerFit:
    """A trained two-layer network :math:`x \\mapsto \\sigma(xW^\\top + b)\\, a`.

    Attributes
    ----------
    W : Tensor of shape (L, d)
        First layer, one row :math:`w_j` per unit.
    b : Tensor of shape (L,)
        Biases of the hidden units.
    a : Tensor of shape (L,)
        Second layer, fitted by ridge regression.
    activation : str
        Name of :math:`\\sigma`, one of ``ACTIVATIONS``.
    """

    W: torch.Tensor
    b: torch.Tensor
    a: torch.Tensor
    activation: str

    def __post_init__(self):
        func = "TwoLayerFit"
        W = check_tensor(self.W, "W", func, ndim=2, floating=True, finite=False)
        for param in ("b", "a"):
            v = check_tensor(getattr(self, param), param, func, ndim=1, floating=True, finite=False)
            if v.shape[0] != W.shape[0]:
                fail(func, param, f"a tensor with one entry per row of W ({W.shape[0]})", v)
        check_option(self.activation, "activation", func, ACTIVATIONS)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activations, shape (n, L)."""
        x = check_tensor(x, "x", "TwoLayerFit.features", ndim=2, floating=True, finite=False)
        if x.shape[1] != self.W.shape[1]:
            fail("TwoLayerFit.features", "x", f"a tensor with {self.W.shape[1]} columns", x)
        return _sigma(x @ self.W.T + self.b, self.activation)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Network output, shape (n,)."""
        return self.features(x) @ self.a


def fit_second_layer(
    W: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    activation: str = "relu",
    lam: float = 1e-3,
    bias_std: float = 1.0,
    bias=None,
    generator=None,
) -> TwoLayerFit:
    """Stage 2: draw fresh biases :math:`b \\sim N(0, s^2 I_L)` with :math:`s` = ``bias_std``
    (unless ``bias`` is given) and fit the second layer by :func:`ridge_fit`.

    Parameters
    ----------
    W : Tensor of shape (L, d)
        First layer (e.g. from :func:`first_layer_step`, or :math:`W_0` for random features).
    x : Tensor of shape (n, d)
        Inputs of the ridge fit.
    y : Tensor of shape (n,)
        Their targets.
    activation : {"relu", "softplus", "tanh"}
        The activation :math:`\\sigma` of the features.
    lam : float
        Ridge parameter :math:`\\lambda_2`.
    bias_std : float
        Standard deviation of the freshly drawn biases.
    bias : Tensor of shape (L,), optional
        Use these biases instead of drawing them (then ``bias_std`` and ``generator`` are unused).
    generator : torch.Generator, int or None
        Source of the biases.

    Returns
    -------
    TwoLayerFit

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022 (Algorithm 1, second stage).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> W, x, y = torch.randn(6, 4, generator=g), torch.randn(20, 4, generator=g), torch.randn(20, generator=g)
    >>> fit_second_layer(W, x, y, generator=0).predict(x[:3]).shape
    torch.Size([3])
    """
    return _checked_fit(W, x, y, activation, lam, bias_std, bias, generator, "fit_second_layer", "x", "y")


def _checked_fit(W, x, y, activation, lam, bias_std, bias, generator, func: str, xname: str, yname: str):
    W = check_tensor(W, "W", func, ndim=2, floating=True, min_rows=1)
    x, y = _check_data(x, y, W.shape[1], func, xname, yname, like=W)
    name = check_option(activation, "activation", func, ACTIVATIONS)
    lam = check_float(lam, "lam", func, low=0.0, low_open=True)
    bias_std = check_float(bias_std, "bias_std", func, low=0.0)
    if bias is None:
        gen = check_generator(generator, func)
        bias = (bias_std * torch.randn(W.shape[0], generator=gen)).to(W)
    else:
        bias = check_tensor(bias, "bias", func, ndim=1, floating=True)
        if bias.shape[0] != W.shape[0]:
            fail(func, "bias", f"a tensor with one entry per row of W ({W.shape[0]})", bias)
    W = W.detach()
    a = _ridge(_sigma(x @ W.T + bias, name), y, lam)
    return TwoLayerFit(W=W, b=bias, a=a, activation=name)


def two_stage_train(
    net: TwoLayerNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    x2=None,
    y2=None,
    normalize: bool = True,
    eta: float = 1.0,
    lam: float = 1e-3,
    bias_std: float = 1.0,
    generator=None,
) -> TwoLayerFit:
    """Stage 1 on ``(x, y)``, then stage 2 on ``(x2, y2)`` (default: the same data).

    Passing a distilled set as ``(x, y)`` and the real data as ``(x2, y2)`` judges the
    distilled first step on its own.

    Parameters
    ----------
    net : TwoLayerNet
        The symmetric initialisation :math:`(W_0, b_0, a_0)`.
    x, y : Tensors of shapes (n, d) and (n,)
        Data for the first-layer step.
    x2, y2 : Tensors of shapes (n2, d) and (n2,), optional
        Data for the ridge fit.
    normalize, eta : see :func:`first_layer_step`
    lam, bias_std, generator : see :func:`fit_second_layer`

    Returns
    -------
    TwoLayerFit

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022.

    Examples
    --------
    >>> net, g = TwoLayerNet(4, 8, generator=0), torch.Generator().manual_seed(0)
    >>> fit = two_stage_train(net, torch.randn(50, 4, generator=g), torch.randn(50, generator=g), generator=0)
    >>> tuple(fit.W.shape), tuple(fit.a.shape)
    ((8, 4), (8,))
    """
    func = "two_stage_train"
    w1 = _checked_step(net, x, y, eta, normalize, func)
    if (x2 is None) != (y2 is None):
        fail(func, "y2" if y2 is None else "x2", "given together with the other stage-2 tensor", None)
    if x2 is None:
        return _checked_fit(w1, x, y, net.activation, lam, bias_std, None, generator, func, "x", "y")
    return _checked_fit(w1, x2, y2, net.activation, lam, bias_std, None, generator, func, "x2", "y2")
