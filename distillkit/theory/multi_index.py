"""Gaussian multi-index tasks :math:`y = g(U^\\top x) + \\varepsilon`.

The input is :math:`x \\sim N(0, I_d)`; the label depends on :math:`x` only through its
projection onto an :math:`r`-dimensional subspace, the columns of an orthonormal
:math:`U \\in \\mathbb{R}^{d \\times r}`. This is the task structure of Damian, Lee &
Soltanolkotabi (COLT 2022) and of Kinoshita, Nishikawa & Toyoizumi (arXiv:2603.14830),
whose exact assumptions on the link :math:`g` we could not read; the links here are our
choice (see :func:`make_link`).

The quantity that one large gradient step "sees" is the expected Hessian
:math:`E[\\nabla^2 g(z)]`, :math:`z \\sim N(0, I_r)`. By Stein's lemma twice it equals
:math:`E[g(z)(zz^\\top - I_r)]`, which :func:`expected_hessian_mc` estimates and the links
give in closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._validation import check_float, check_generator, check_int, check_option, check_tensor, fail

__all__ = ["LINKS", "Link", "make_link", "random_subspace", "expected_hessian_mc", "MultiIndexTask"]

LINKS = ("quadratic", "he2", "tanh_sum", "product")


@dataclass(frozen=True)
class Link:
    """A link function :math:`g: \\mathbb{R}^r \\to \\mathbb{R}` and its expected Hessian.

    Attributes
    ----------
    name : str
        The name :func:`make_link` knows it by.
    r : int
        Number of inputs of ``g``.
    fn : callable
        Maps ``z`` of shape (n, r) to ``g(z)`` of shape (n,).
    hessian : Tensor of shape (r, r), float64
        :math:`E[\\nabla^2 g(z)]` for :math:`z \\sim N(0, I_r)`, exact.
    """

    name: str
    r: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    hessian: torch.Tensor

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)


def _quadratic(z: torch.Tensor) -> torch.Tensor:
    out = 0.5 * (z[:, 0] ** 2 - 1.0)
    if z.shape[1] > 1:
        out = out + (z[:, :-1] * z[:, 1:]).sum(1)  # chain z1 z2 + z2 z3 + ...
    return out


def make_link(name: str = "quadratic", r: int = 2) -> Link:
    """One of the book's link functions, with its exact expected Hessian.

    ``"quadratic"``
        :math:`g(z) = \\tfrac12(z_1^2 - 1) + \\sum_{i<r} z_i z_{i+1}`. Its Hessian is
        tridiagonal with determinant :math:`\\pm 1`: rank :math:`r`, so one gradient
        step can find the whole subspace. For :math:`r = 2` this is
        :math:`z_1 z_2 + \\tfrac12(z_1^2 - 1)`.
    ``"he2"``
        single-index :math:`g(z) = \\mathrm{He}_2(s)/\\sqrt 2` with
        :math:`s = \\sum_i z_i / \\sqrt r`: expected Hessian of rank 1.
    ``"tanh_sum"``
        :math:`g(z) = \\tanh(\\sum_i z_i / \\sqrt r)`: odd, so the expected Hessian is 0
        and a first step sees only the linear direction.
    ``"product"``
        :math:`g(z) = \\prod_i z_i`: Hessian of rank 2 when :math:`r = 2`, zero when
        :math:`r \\ne 2` (information exponent :math:`r`).

    Parameters
    ----------
    name : {"quadratic", "he2", "tanh_sum", "product"}
        The link function: the book's quadratic, the Hermite polynomial, a sum of tanh, or the
        product of the coordinates.
    r : int
        Intrinsic dimension, at least 1.

    Returns
    -------
    Link

    References
    ----------
    Damian, Lee & Soltanolkotabi, "Neural Networks can Learn Representations with
    Gradient Descent", COLT 2022 (the rank-:math:`r` expected-Hessian condition).

    Examples
    --------
    >>> g = make_link("quadratic", 2)
    >>> g.hessian.tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    name = check_option(name, "name", "make_link", LINKS)
    r = check_int(r, "r", "make_link", low=1)
    h = torch.zeros(r, r, dtype=torch.float64)
    if name == "quadratic":
        h[0, 0] = 1.0
        idx = torch.arange(r - 1)
        h[idx, idx + 1] = 1.0
        h[idx + 1, idx] = 1.0
        fn = _quadratic
    elif name == "he2":
        h[:] = 2**0.5 / r  # sqrt(2) * v v^T with v = 1 / sqrt(r)

        def fn(z):
            s = z.sum(1) / r**0.5
            return (s**2 - 1.0) / 2**0.5
    elif name == "tanh_sum":

        def fn(z):
            return torch.tanh(z.sum(1) / r**0.5)
    else:
        if r == 2:
            h[0, 1] = h[1, 0] = 1.0

        def fn(z):
            return z.prod(1)

    return Link(name=name, r=r, fn=fn, hessian=h)


def random_subspace(d: int, r: int, *, generator=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A uniformly random :math:`d \\times r` matrix with orthonormal columns.

    QR decomposition of a Gaussian matrix, with the signs of the columns fixed so that
    ``R`` has a positive diagonal (this makes the draw uniform on the Stiefel manifold and
    the result a deterministic function of the Gaussian draw).

    Parameters
    ----------
    d : int
        Ambient dimension, at least 1.
    r : int
        Number of columns, in [1, d].
    generator : torch.Generator, int or None
        Source of the Gaussian matrix that is orthonormalised.
    dtype : torch.dtype
        A floating dtype (an integer one would round the basis to zeros).

    Returns
    -------
    U : Tensor of shape (d, r)
        :math:`U^\\top U = I_r`.

    References
    ----------
    Mezzadri, "How to generate random matrices from the classical compact groups",
    Notices of the AMS, 2007 (the sign fix).

    Examples
    --------
    >>> U = random_subspace(5, 2, generator=0)
    >>> torch.allclose(U.T @ U, torch.eye(2), atol=1e-6)
    True
    """
    func = "random_subspace"
    d = check_int(d, "d", func, low=1)
    r = check_int(r, "r", func, low=1, high=d)
    if not isinstance(dtype, torch.dtype):
        fail(func, "dtype", "a floating torch.dtype (e.g. torch.float32)", dtype, error=TypeError)
    if not dtype.is_floating_point:
        fail(func, "dtype", "a floating torch.dtype (an orthonormal basis is not integral)", f"<{dtype}>")
    gen = check_generator(generator, func)
    gauss = torch.randn(d, r, generator=gen, dtype=torch.float64)
    q, rr = torch.linalg.qr(gauss)  # q (d, r), rr (r, r)
    signs = torch.sign(torch.diagonal(rr))
    signs[signs == 0] = 1.0
    return (q * signs).to(dtype)


def expected_hessian_mc(link: Link, *, n_samples: int = 100_000, generator=None) -> torch.Tensor:
    """Monte Carlo estimate of :math:`E[\\nabla^2 g(z)] = E[g(z)(zz^\\top - I_r)]`.

    The identity is Stein's lemma applied twice (Gaussian integration by parts), so no
    derivative of ``g`` is needed.

    Parameters
    ----------
    link : Link
        The link function :math:`g`.
    n_samples : int
        Number of Gaussian samples of :math:`z`.
    generator : torch.Generator, int or None
        Source of the samples.

    Returns
    -------
    Tensor of shape (r, r), float64

    References
    ----------
    Stein, "Estimation of the mean of a multivariate normal distribution", Annals of
    Statistics, 1981.

    Examples
    --------
    >>> h = expected_hessian_mc(make_link("quadratic", 2), n_samples=200_000, generator=0)
    >>> bool((h - make_link("quadratic", 2).hessian).abs().max() < 0.05)
    True
    """
    func = "expected_hessian_mc"
    if not isinstance(link, Link):
        fail(func, "link", "a Link (see make_link)", link, error=TypeError)
    n_samples = check_int(n_samples, "n_samples", func, low=2)
    gen = check_generator(generator, func)
    z = torch.randn(n_samples, link.r, generator=gen, dtype=torch.float64)
    gz = link(z)  # (n,)
    outer = torch.einsum("n,ni,nj->ij", gz, z, z) / n_samples  # E[g z z^T]
    return outer - gz.mean() * torch.eye(link.r, dtype=torch.float64)


class MultiIndexTask:
    """The task :math:`x \\sim N(0, I_d)`, :math:`y = g(U^\\top x) + \\sigma_\\varepsilon \\xi`.

    Parameters
    ----------
    d : int
        Input dimension.
    r : int
        Intrinsic dimension, in [1, d].
    link : str or Link
        A name for :func:`make_link` or a :class:`Link` with ``link.r == r``.
    noise_std : float
        Standard deviation of the Gaussian label noise.
    U : Tensor of shape (d, r), optional
        Orthonormal columns; drawn with :func:`random_subspace` from ``generator`` if
        omitted.
    generator : torch.Generator, int or None
        Used only to draw ``U``.

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022; Kinoshita, Nishikawa & Toyoizumi,
    arXiv:2603.14830 (2026).

    Examples
    --------
    >>> task = MultiIndexTask(16, 2, generator=0)
    >>> x, y = task.sample(5, generator=1)
    >>> tuple(x.shape), tuple(y.shape)
    ((5, 16), (5,))
    """

    def __init__(self, d: int, r: int, *, link="quadratic", noise_std: float = 0.0, U=None, generator=None):
        func = "MultiIndexTask"
        self.d = check_int(d, "d", func, low=1)
        self.r = check_int(r, "r", func, low=1, high=self.d)
        if isinstance(link, str):
            link = make_link(check_option(link, "link", func, LINKS), self.r)
        elif not isinstance(link, Link):
            fail(func, "link", "a link name or a Link", link, error=TypeError)
        elif link.r != self.r:
            fail(func, "link", f"a Link with r = {self.r}", f"<a Link with r = {link.r}>")
        self.link = link
        self.noise_std = check_float(noise_std, "noise_std", func, low=0.0)
        if U is None:
            U = random_subspace(self.d, self.r, generator=generator)
        else:
            U = check_tensor(U, "U", func, ndim=2, floating=True)
            if tuple(U.shape) != (self.d, self.r):
                fail(func, "U", f"a tensor of shape ({self.d}, {self.r})", U)
            gram = U.double().T @ U.double()
            if not torch.allclose(gram, torch.eye(self.r, dtype=torch.float64), atol=1e-4):
                fail(func, "U", "a matrix with orthonormal columns (U^T U = I)", "<a matrix with U^T U != I>")
        self.U = U

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The noiseless label :math:`g(U^\\top x)`, shape (n,), for ``x`` of shape (n, d)."""
        x = check_tensor(x, "x", "MultiIndexTask.target", ndim=2, floating=True)
        if x.shape[1] != self.d:
            fail("MultiIndexTask.target", "x", f"a tensor with {self.d} columns", x)
        return self.link(x @ self.U.to(x))  # (n, d) @ (d, r) -> (n, r) -> (n,)

    def sample(self, n: int, *, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` examples: ``x`` of shape (n, d) and ``y`` of shape (n,), float32."""
        n = check_int(n, "n", "MultiIndexTask.sample", low=1)
        gen = check_generator(generator, "MultiIndexTask.sample")
        x = torch.randn(n, self.d, generator=gen, dtype=self.U.dtype)
        y = self.target(x)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(n, generator=gen, dtype=y.dtype)
        return x, y

    def expected_hessian(self) -> torch.Tensor:
        """:math:`E[\\nabla^2_x g(U^\\top x)] = U H_g U^\\top`, shape (d, d), float64."""
        u = self.U.double()
        return u @ self.link.hessian @ u.T

    def projector(self) -> torch.Tensor:
        """The orthogonal projector :math:`P_U = UU^\\top`, shape (d, d)."""
        return self.U @ self.U.T

    def __repr__(self) -> str:
        return f"MultiIndexTask(d={self.d}, r={self.r}, link={self.link.name!r}, noise_std={self.noise_std:g})"
