"""Fully connected networks: a plain MLP and the two-layer network of the theory chapter."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_generator, check_int, check_option, fail
from ._input import check_input
from .init import _init_parameters

__all__ = ["MLP", "TwoLayerNet"]


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` blocks and a linear classifier.

    Parameters
    ----------
    in_features : int
        Number of input features after flattening (784 for MNIST, 64 for digits).
    n_classes : int
        Number of outputs.
    hidden : tuple of int
        Widths of the hidden layers.
    generator : torch.Generator, int or None
        Source of the initial weights (never the global generator).

    Examples
    --------
    >>> MLP(64, 10, hidden=(32,), generator=0)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_features: int, n_classes: int = 10, *, hidden=(256, 128), generator=None):
        super().__init__()
        in_features = check_int(in_features, "in_features", "MLP", low=1)
        n_classes = check_int(n_classes, "n_classes", "MLP", low=1)
        if not isinstance(hidden, (tuple, list)):
            fail("MLP", "hidden", "a tuple or list of ints (the hidden widths)", hidden, error=TypeError)
        widths = [check_int(h, "hidden", "MLP", low=1) for h in hidden]
        gen = check_generator(generator, "MLP")
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        with torch.random.fork_rng(devices=[]):  # default inits use the global RNG; undo that
            for w in widths:
                layers += [nn.Linear(prev, w), nn.ReLU()]
                prev = w
            self.classifier = nn.Linear(prev, n_classes)
        self.in_features = in_features
        self.body = nn.Sequential(*layers)
        self.feature_dim = prev
        _init_parameters(self, gen)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (n, feature_dim); an empty batch gives (0, feature_dim)."""
        x = check_input(self, x, "MLP.forward", min_ndim=2)
        if x.shape[1:].numel() != self.in_features:
            raise ValueError(
                f"The 'x' parameter of MLP.forward must have {self.in_features} features per example. "
                f"Got a tensor of shape {tuple(x.shape)} instead."
            )
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class TwoLayerNet(nn.Module):
    """f(x) = sum_j a_j sigma(w_j . x + b_j): a two-layer network of width ``width``.

    With ``symmetric=True`` the hidden units come in pairs with equal (w, b) and opposite
    output weights (+a, -a), so the network outputs exactly 0 at initialisation (the
    set-up of Damian, Lee & Soltanolkotabi, COLT 2022). Rows of W are drawn N(0, I/d).

    Parameters
    ----------
    d : int
        Input dimension.
    width : int
        Number of hidden units L (even when ``symmetric``).
    activation : {"relu", "softplus", "tanh"}
        The activation :math:`\\sigma` of the hidden units.
    symmetric : bool
        Pair the units (equal first-layer rows and biases, opposite second-layer weights) so that
        the network is exactly 0 at initialisation.
    bias_std : float
        Standard deviation of the first-layer biases.
    generator : torch.Generator, int or None
        Source of the initial weights and biases.
    """

    def __init__(self, d: int, width: int, *, activation: str = "relu", symmetric: bool = True,
                 bias_std: float = 0.5, generator=None):
        super().__init__()
        d = check_int(d, "d", "TwoLayerNet", low=1)
        width = check_int(width, "width", "TwoLayerNet", low=2 if symmetric else 1)
        if symmetric and width % 2:
            raise ValueError(f"The 'width' parameter of TwoLayerNet must be an even int when symmetric=True. Got {width} instead.")
        self.activation = check_option(activation, "activation", "TwoLayerNet", ("relu", "softplus", "tanh"))
        gen = check_generator(generator, "TwoLayerNet")
        half = width // 2 if symmetric else width
        w = torch.randn(half, d, generator=gen) / d**0.5
        b = torch.randn(half, generator=gen) * bias_std
        a = torch.ones(half) / width**0.5 * torch.where(torch.rand(half, generator=gen) < 0.5, -1.0, 1.0)
        if symmetric:
            w, b, a = torch.cat([w, w]), torch.cat([b, b]), torch.cat([a, -a])
        self.W = nn.Parameter(w)  # (L, d)
        self.b = nn.Parameter(b)  # (L,)
        self.a = nn.Parameter(a)  # (L,)

    def sigma(self, z: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "softplus":
            return nn.functional.softplus(z)
        return torch.tanh(z)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activations, shape (n, L)."""
        x = check_input(self, x, "TwoLayerNet.forward", min_ndim=2)
        if x.dim() != 2 or x.shape[1] != self.W.shape[1]:
            fail("TwoLayerNet.forward", "x", f"a tensor of shape (n, {self.W.shape[1]})", x)
        return self.sigma(x @ self.W.T + self.b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x) @ self.a  # (n, L) @ (L,) -> (n,)
