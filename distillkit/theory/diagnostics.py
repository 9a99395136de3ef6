"""Diagnostics for the theory chapter: how much of a vector, a weight matrix or a gradient
lies in the task subspace :math:`\\operatorname{span}(U)`, the population first-layer
gradient of a quadratic task, and the memory ledger of a distilled set.

References: Damian, Lee & Soltanolkotabi (COLT 2022) for the gradient at a symmetric
initialisation; Kinoshita, Nishikawa & Toyoizumi (arXiv:2603.14830, 2026) for the memory
count :math:`\\tilde\\Theta(r^2 d + L)`; Björck & Golub (1973) for principal angles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .._validation import check_int, check_option, check_tensor, fail
from ..models import TwoLayerNet
from .multi_index import MultiIndexTask
from .two_stage import _check_net

__all__ = [
    "subspace_fraction",
    "random_fraction_baseline",
    "outside_fraction",
    "principal_angles",
    "population_first_layer_gradient",
    "MemoryLedger",
    "memory_ledger",
]


def _check_u(U, rows: int, func: str) -> torch.Tensor:
    U = check_tensor(U, "U", func, ndim=2, floating=True)
    if U.shape[0] != rows:
        fail(func, "U", f"a tensor with {rows} rows", U)
    return U


def subspace_fraction(x: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """:math:`\\lVert P_U x_i\\rVert / \\lVert x_i\\rVert` for every row :math:`x_i` (1 = inside
    the subspace, 0 = orthogonal to it).

    Parameters
    ----------
    x : Tensor of shape (n, d)
        Vectors, one per row.
    U : Tensor of shape (d, r), orthonormal columns
        Basis of the subspace.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> U = torch.tensor([[1.0], [0.0]])
    >>> subspace_fraction(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), U)
    tensor([0.6000, 0.0000])
    """
    x = check_tensor(x, "x", "subspace_fraction", ndim=2, floating=True)
    U = _check_u(U, x.shape[1], "subspace_fraction")
    inside = (x @ U.to(x)).norm(dim=1)  # ||U^T x|| = ||P_U x||
    return inside / x.norm(dim=1).clamp_min(1e-30)


def random_fraction_baseline(d: int, r: int) -> float:
    """:math:`E\\,\\lVert P_U x\\rVert/\\lVert x\\rVert` for an isotropic random :math:`x`:
    :math:`\\Gamma(\\tfrac{r+1}2)\\Gamma(\\tfrac d2) / (\\Gamma(\\tfrac r2)\\Gamma(\\tfrac{d+1}2))
    \\approx \\sqrt{r/d}` (the squared fraction is Beta(r/2, (d-r)/2)).

    Parameters
    ----------
    d : int
        Ambient dimension.
    r : int
        Dimension of the subspace, at most ``d``.

    Examples
    --------
    >>> round(random_fraction_baseline(32, 2), 3)
    0.223
    """
    d = check_int(d, "d", "random_fraction_baseline", low=1)
    r = check_int(r, "r", "random_fraction_baseline", low=1, high=d)
    if r == d:
        return 1.0
    return math.exp(math.lgamma((r + 1) / 2) + math.lgamma(d / 2) - math.lgamma(r / 2) - math.lgamma((d + 1) / 2))


def outside_fraction(G: torch.Tensor, U: torch.Tensor, *, own=None) -> float:
    """Fraction of :math:`\\lVert G\\rVert_F` outside :math:`\\operatorname{span}(U)`:
    :math:`\\lVert G(I - UU^\\top)\\rVert_F / \\lVert G\\rVert_F`.

    If ``own`` (the weights :math:`W_0` at which ``G`` was taken) is given, each row's
    remaining part along its own :math:`(I - UU^\\top) w_j` is removed too: the population
    gradient of neuron :math:`j` lies exactly in :math:`\\operatorname{span}(U) +
    \\operatorname{span}(w_j)` (Stein's lemma), so what is left is sampling noise.

    Parameters
    ----------
    G : Tensor of shape (L, d)
        A first-layer gradient (or any matrix with one row per unit).
    U : Tensor of shape (d, r)
        Orthonormal basis of the task subspace.
    own : Tensor of shape (L, d), optional
        The weights at which ``G`` was taken; each row's part along its own weight is removed too.

    Returns
    -------
    float

    Examples
    --------
    >>> U = torch.tensor([[1.0], [0.0]])
    >>> round(outside_fraction(torch.tensor([[3.0, 4.0]]), U), 6)
    0.8
    """
    func = "outside_fraction"
    G = check_tensor(G, "G", func, ndim=2, floating=True)
    U = _check_u(U, G.shape[1], func).to(G)
    rest = G - (G @ U) @ U.T  # (L, d): G (I - U U^T)
    if own is not None:
        own = check_tensor(own, "own", func, ndim=2, floating=True)
        if own.shape != G.shape:
            fail(func, "own", f"a tensor of the shape of G {tuple(G.shape)}", own)
        v = own.to(G) - (own.to(G) @ U) @ U.T  # (L, d): (I - U U^T) w_j
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
        rest = rest - (rest * v).sum(1, keepdim=True) * v
    return float(rest.norm() / G.norm().clamp_min(1e-30))


def principal_angles(A: torch.Tensor, U: torch.Tensor, *, k: int | None = None) -> torch.Tensor:
    """Principal angles (radians, ascending) between the span of the top-``k`` right
    singular vectors of ``A`` (the main directions of its rows) and
    :math:`\\operatorname{span}(U)`.

    Parameters
    ----------
    A : Tensor of shape (L, d)
        E.g. learned first-layer weights or a gradient.
    U : Tensor of shape (d, r)
        Orthonormal basis of the reference subspace.
    k : int, optional
        Dimension of the row subspace to compare, default ``r``.

    Returns
    -------
    Tensor of shape (min(k, r),), float64

    References
    ----------
    Björck & Golub, "Numerical methods for computing angles between linear subspaces",
    Mathematics of Computation, 1973.

    Examples
    --------
    >>> U = torch.eye(3)[:, :1]
    >>> [round(t, 6) for t in principal_angles(torch.tensor([[1.0, 1.0, 0.0]]), U).tolist()]
    [0.785398]
    """
    func = "principal_angles"
    A = check_tensor(A, "A", func, ndim=2, floating=True)
    U = _check_u(U, A.shape[1], func).to(A.device).double()
    k = U.shape[1] if k is None else check_int(k, "k", func, low=1, high=min(A.shape))
    _, _, vh = torch.linalg.svd(A.double(), full_matrices=False)
    q = vh[:k].T  # (d, k) orthonormal
    u, _ = torch.linalg.qr(U)
    cos = torch.linalg.svdvals(q.T @ u).clamp(-1.0, 1.0)
    return torch.arccos(cos).sort().values


def _hermite_c(name: str, s: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """E[sigma^(k)(s xi + b)], xi ~ N(0, 1), for k in {2, 4}."""
    if name == "relu":
        p = torch.exp(-0.5 * (b / s) ** 2) / (s * math.sqrt(2 * math.pi))  # density of N(0, s^2) at b
        return p if k == 2 else p * (b**2 / s**4 - 1 / s**2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    nodes, weights = torch.tensor(nodes).to(s), torch.tensor(weights).to(s) / math.sqrt(2 * math.pi)
    z = s[:, None] * nodes + b[:, None]  # (L, q)
    sig = torch.nn.functional.softplus(z) if name == "softplus" else torch.tanh(z)
    he = nodes**2 - 1 if k == 2 else nodes**4 - 6 * nodes**2 + 3  # probabilists' Hermite polynomials
    return (sig * he * weights).sum(1) / s**k  # E[sigma(s xi + b) He_k(xi)] / s^k


def population_first_layer_gradient(net: TwoLayerNet, task: MultiIndexTask) -> torch.Tensor:
    """Exact :math:`E[\\nabla_W \\mathcal L(W_0)]` for a degree-2 link at a symmetric
    initialisation (network output 0).

    For :math:`y = \\tfrac12(x^\\top H x - \\operatorname{tr} H)` with
    :math:`H = U H_g U^\\top`, Stein's lemma gives, row by row,
    :math:`-a_j\\,[c_2 H w_j + \\tfrac12 c_4 (w_j^\\top H w_j) w_j]` with
    :math:`c_k = E[\\sigma^{(k)}(w_j^\\top x + b_j)]` (closed form for ReLU, Gauss-Hermite
    quadrature otherwise). The first term lies in :math:`\\operatorname{span}(U)`.

    Parameters
    ----------
    net : TwoLayerNet
        Symmetric (output 0 at its weights).
    task : MultiIndexTask
        With link ``"quadratic"`` or ``"he2"`` (label noise does not matter).

    Returns
    -------
    Tensor of shape (L, d), float64

    References
    ----------
    Damian, Lee & Soltanolkotabi, COLT 2022.

    Examples
    --------
    >>> task = MultiIndexTask(6, 2, generator=0)
    >>> population_first_layer_gradient(TwoLayerNet(6, 8, generator=0), task).shape
    torch.Size([8, 6])
    """
    func = "population_first_layer_gradient"
    net = _check_net(net, func)
    if not isinstance(task, MultiIndexTask):
        fail(func, "task", "a MultiIndexTask", task, error=TypeError)
    if task.link.name not in ("quadratic", "he2"):
        fail(func, "task", "a task with a degree-2 link ('quadratic' or 'he2')", f"<link {task.link.name!r}>")
    W, b, a = (p.detach().double() for p in (net.W, net.b, net.a))
    if W.shape[1] != task.d:
        fail(func, "task", f"a task with d = {W.shape[1]}", f"<a task with d = {task.d}>")
    half = W.shape[0] // 2
    if W.shape[0] % 2 or not (
        torch.equal(W[:half], W[half:]) and torch.equal(b[:half], b[half:]) and torch.allclose(a[:half], -a[half:])
    ):
        fail(func, "net", "a symmetric TwoLayerNet (output 0 at initialisation)", "<a non-symmetric network>")
    H = task.expected_hessian()  # (d, d)
    s = W.norm(dim=1)
    c2, c4 = _hermite_c(net.activation, s, b, 2), _hermite_c(net.activation, s, b, 4)
    hw = W @ H  # rows H w_j (H symmetric), (L, d)
    quad = (hw * W).sum(1)  # w_j^T H w_j, (L,)
    return -a[:, None] * (c2[:, None] * hw + 0.5 * (c4 * quad)[:, None] * W)


@dataclass(frozen=True)
class MemoryLedger:
    """Numbers stored to reproduce the two-stage training (see :func:`memory_ledger`).

    Attributes
    ----------
    stage1 : int
        Numbers stored for the first stage's distilled points, ``m * (d + 1)``.
    stage2 : int
        Numbers stored for the second stage (0 when it uses the real data).
    distilled : int
        ``stage1 + stage2``.
    real : int
        Numbers in the real data the pipeline replaces, ``n_real * (d + 1)``.
    reference : int
        :math:`r^2 d + L`, the paper's order without constants or logarithms.
    compression : float
        ``real / distilled``.
    """

    stage1: int
    stage2: int
    distilled: int
    real: int
    reference: int
    compression: float

    def as_dict(self) -> dict:
        return asdict(self)


def memory_ledger(d: int, r: int, L: int, *, m: int, n_real: int, m2: int = 0, stage2: str = "real") -> MemoryLedger:
    """How many numbers the distilled pipeline stores, against the real data it replaces.

    Parameters
    ----------
    d, r, L : int
        Input dimension, intrinsic dimension, width.
    m : int
        Distilled points for stage 1: ``m * (d + 1)`` numbers.
    n_real : int
        Real examples the full pipeline trains on: ``n_real * (d + 1)`` numbers.
    m2 : int
        Distilled points for stage 2.
    stage2 : {"real", "labels", "points"}
        Stage 2 on the real data (counted in ``real`` only, 0 here), on ``m2`` learned
        labels with seeded inputs (``m2`` numbers) or on ``m2`` learned points
        (``m2 * (d + 1)``).

    Returns
    -------
    MemoryLedger
        ``stage1``, ``stage2``, ``distilled`` (their sum), ``real``, ``reference``
        (:math:`r^2 d + L`, the paper's order without constants or logs) and
        ``compression`` (``real / distilled``).

    References
    ----------
    Kinoshita, Nishikawa & Toyoizumi, arXiv:2603.14830 (2026).

    Examples
    --------
    >>> memory_ledger(32, 2, 128, m=16, n_real=4096, m2=128, stage2="labels").distilled
    656
    """
    func = "memory_ledger"
    d = check_int(d, "d", func, low=1)
    r = check_int(r, "r", func, low=1, high=d)
    L = check_int(L, "L", func, low=1)
    m = check_int(m, "m", func, low=1)
    n_real = check_int(n_real, "n_real", func, low=1)
    stage2 = check_option(stage2, "stage2", func, ("real", "labels", "points"))
    m2 = check_int(m2, "m2", func, low=0 if stage2 == "real" else 1)
    s1 = m * (d + 1)
    s2 = 0 if stage2 == "real" else (m2 if stage2 == "labels" else m2 * (d + 1))
    real = n_real * (d + 1)
    return MemoryLedger(
        stage1=s1, stage2=s2, distilled=s1 + s2, real=real, reference=r * r * d + L, compression=real / (s1 + s2)
    )
