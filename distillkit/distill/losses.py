"""The mathematical cores of dataset distillation as pure tensor functions.

Each method of :mod:`distillkit.distill` optimises one of these objectives; they are kept
free of loops over data, models and optimisers so the book can show them in a few lines
and the tests can check them against hand computations.

* :func:`gradient_matching_distance` -- the layer-wise distance between two gradients of
  Dataset Condensation (DC, Zhao, Mopuri & Bilen, ICLR 2021), used by DC and DSA.
* :func:`distribution_matching_loss` -- the squared distance between mean embeddings of
  Distribution Matching (DM, Zhao & Bilen, WACV 2023).
* :func:`trajectory_matching_loss` -- the normalised parameter distance of Matching
  Training Trajectories (MTT, Cazenavette et al., CVPR 2022).
* :func:`kernel_ridge` -- kernel ridge regression, the inner solver of KIP (Nguyen, Chen &
  Lee, ICLR 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._validation import check_float, check_option, check_tensor, fail

__all__ = [
    "gradient_matching_distance",
    "distribution_matching_loss",
    "trajectory_matching_loss",
    "kernel_ridge",
    "gaussian_kernel",
]

_METRICS = ("dc", "cos", "mse")


def _as_tensor_list(value, param: str, func: str) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        out = [value]
    elif not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        fail(func, param, "a tensor or a non-empty sequence of tensors", value, error=TypeError)
    else:
        out = list(value)
    for t in out:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            fail(func, param, "a sequence of floating-point tensors", t, error=TypeError)
        if t.device.type == "meta":
            fail(func, param, "tensors with data (not on the meta device)",
                 f"<a meta tensor of shape {tuple(t.shape)}>")
    return out


def gradient_matching_distance(g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], *,
                               metric: str = "dc") -> torch.Tensor:
    r"""Distance between the gradients a network receives from synthetic and from real data.

    With ``metric="dc"`` (the distance of the DC paper) every parameter tensor with at least
    two dimensions is reshaped to ``(out, -1)`` (a convolution ``(out, in*h*w)``, a linear
    layer ``(out, in)``) and contributes a sum over output channels of cosine distances,

    .. math::

        d(G^S, G^R) = \sum_{\ell} \sum_{i=1}^{\mathrm{out}_\ell}
        \Bigl(1 - \frac{\langle G^R_{\ell,i}, G^S_{\ell,i}\rangle}
        {\lVert G^R_{\ell,i}\rVert\,\lVert G^S_{\ell,i}\rVert + 10^{-6}}\Bigr).

    One-dimensional tensors (biases, normalisation scales and shifts) contribute 0. The
    distance is therefore invariant to a positive rescaling of each output channel.
    ``metric="cos"`` is one global cosine distance between the concatenated flattened
    gradients; ``metric="mse"`` the squared Euclidean distance between them.

    Parameters
    ----------
    g_syn : sequence of Tensor
        One gradient per parameter, from the synthetic batch (may carry a graph: the
        distance is differentiable with respect to it).
    g_real : sequence of Tensor
        The matching gradients from the real batch, same shapes.
    metric : {"dc", "cos", "mse"}
        DC's layer-wise distance (1 - cosine per output unit, summed), the cosine distance of the
        whole flattened gradients, or their squared Euclidean distance.

    Returns
    -------
    Tensor
        A scalar.

    References
    ----------
    B. Zhao, K. R. Mopuri, H. Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021.

    Examples
    --------
    >>> g = [torch.ones(4, 3), torch.ones(4)]
    >>> round(float(gradient_matching_distance(g, g)), 4)  # identical gradients (up to the 1e-6)
    0.0
    >>> round(float(gradient_matching_distance(g, [-g[0], g[1]])), 4)  # opposite: 2 per output channel
    8.0
    """
    func = "gradient_matching_distance"
    metric = check_option(metric, "metric", func, _METRICS)
    g_syn = _as_tensor_list(g_syn, "g_syn", func)
    g_real = _as_tensor_list(g_real, "g_real", func)
    if len(g_syn) != len(g_real):
        fail(func, "g_real", f"a sequence of {len(g_syn)} tensors, one per tensor of g_syn", f"<{len(g_real)} tensors>")
    for i, (s, r) in enumerate(zip(g_syn, g_real)):
        if s.shape != r.shape:
            fail(func, "g_real", f"tensors of the same shapes as g_syn (tensor {i}: {tuple(s.shape)})",
                 f"<shape {tuple(r.shape)}>")
    return _gradient_matching_distance(g_syn, g_real, metric)


def _gradient_matching_distance(g_syn, g_real, metric: str) -> torch.Tensor:
    """Core of :func:`gradient_matching_distance` for validated inputs."""
    if metric == "dc":
        total = g_syn[0].new_zeros(())
        for s, r in zip(g_syn, g_real):
            if s.dim() < 2:  # biases and norm parameters are ignored, as in the reference
                continue
            s2, r2 = s.reshape(s.shape[0], -1), r.reshape(r.shape[0], -1)  # (out, in*h*w)
            cos = (s2 * r2).sum(1) / (s2.norm(dim=1) * r2.norm(dim=1) + 1e-6)  # (out,)
            total = total + (1.0 - cos).sum()
        return total
    s = torch.cat([t.reshape(-1) for t in g_syn])
    r = torch.cat([t.reshape(-1) for t in g_real])
    if metric == "cos":
        return 1.0 - (s * r).sum() / (s.norm() * r.norm() + 1e-6)
    return ((s - r) ** 2).sum()


def _batched_gradient_matching_distance(g_syn, g_real, metric: str) -> torch.Tensor:
    """The sum over classes of :func:`gradient_matching_distance`, for gradients that all carry a
    leading class dimension (the per-class gradients of DC's vectorised step)."""
    if metric == "dc":
        total = g_syn[0].new_zeros(())
        for s, r in zip(g_syn, g_real):
            if s.dim() < 3:  # per-class biases and norm parameters are ignored
                continue
            s2, r2 = s.reshape(s.shape[0] * s.shape[1], -1), r.reshape(r.shape[0] * r.shape[1], -1)  # (C*out, -1)
            total = total + (1.0 - (s2 * r2).sum(1) / (s2.norm(dim=1) * r2.norm(dim=1) + 1e-6)).sum()
        return total
    s = torch.cat([t.reshape(t.shape[0], -1) for t in g_syn], 1)  # (C, n_params)
    r = torch.cat([t.reshape(t.shape[0], -1) for t in g_real], 1)
    if metric == "cos":
        return (1.0 - (s * r).sum(1) / (s.norm(dim=1) * r.norm(dim=1) + 1e-6)).sum()
    return ((s - r) ** 2).sum()


def distribution_matching_loss(f_real: torch.Tensor, f_syn: torch.Tensor) -> torch.Tensor:
    r"""Squared distance between the mean embeddings of a real and a synthetic batch,
    :math:`\lVert \frac1n\sum_i f^R_i - \frac1m\sum_j f^S_j\rVert^2`.

    Parameters
    ----------
    f_real : Tensor of shape (n, d)
        Embeddings of real examples (one class).
    f_syn : Tensor of shape (m, d)
        Embeddings of synthetic examples of the same class.

    Returns
    -------
    Tensor
        A scalar, zero when both sets have the same mean embedding.

    References
    ----------
    B. Zhao, H. Bilen, "Dataset Condensation with Distribution Matching", WACV 2023.

    Examples
    --------
    >>> f = torch.randn(5, 3)
    >>> float(distribution_matching_loss(f, f))
    0.0
    """
    func = "distribution_matching_loss"
    f_real = check_tensor(f_real, "f_real", func, ndim=2, floating=True, finite=False, min_rows=1)
    f_syn = check_tensor(f_syn, "f_syn", func, ndim=2, floating=True, finite=False, min_rows=1)
    if f_real.shape[1] != f_syn.shape[1]:
        fail(func, "f_syn", f"a tensor with {f_real.shape[1]} columns like f_real", f_syn)
    return _distribution_matching_loss(f_real, f_syn)


def _distribution_matching_loss(f_real: torch.Tensor, f_syn: torch.Tensor) -> torch.Tensor:
    return ((f_real.mean(0) - f_syn.mean(0)) ** 2).sum()


def _flat(value, param: str, func: str) -> torch.Tensor:
    tensors = _as_tensor_list(value, param, func)
    return torch.cat([t.reshape(-1) for t in tensors])


def trajectory_matching_loss(theta_student, theta_start, theta_target) -> torch.Tensor:
    r"""Normalised distance of a student's parameters to an expert's target parameters,
    :math:`\lVert\theta_N - \theta^*_{t+M}\rVert^2 / \lVert\theta^*_t - \theta^*_{t+M}\rVert^2`.

    Parameters
    ----------
    theta_student : Tensor or sequence of Tensor
        Parameters after the student's steps on the synthetic set (flattened and
        concatenated if a sequence).
    theta_start : Tensor or sequence of Tensor
        The expert's parameters where the student started.
    theta_target : Tensor or sequence of Tensor
        The expert's parameters some epochs later.

    Returns
    -------
    Tensor
        A scalar; 1 when the student did not move, 0 when it reached the target.

    References
    ----------
    G. Cazenavette, T. Wang, A. Torralba, A. A. Efros, J.-Y. Zhu, "Dataset Distillation by
    Matching Training Trajectories", CVPR 2022.

    Examples
    --------
    >>> float(trajectory_matching_loss(torch.tensor([1.0, 0.0]), torch.zeros(2), torch.tensor([2.0, 0.0])))
    0.25
    """
    func = "trajectory_matching_loss"
    student = _flat(theta_student, "theta_student", func)
    start = _flat(theta_start, "theta_start", func)
    target = _flat(theta_target, "theta_target", func)
    for name, t in (("theta_start", start), ("theta_target", target)):
        if t.numel() != student.numel():
            fail(func, name, f"{student.numel()} parameters in all, like theta_student", f"<{t.numel()} parameters>")
    return ((student - target) ** 2).sum() / ((start - target) ** 2).sum()


def gaussian_kernel(bandwidth: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""The Gaussian (RBF) kernel :math:`k(a, b) = \exp(-\lVert a-b\rVert^2 / (2\sigma^2))` as a
    callable ``(a, b) -> Gram matrix (n_a, n_b)`` on inputs flattened from dimension 1.

    Parameters
    ----------
    bandwidth : float
        :math:`\sigma > 0`.

    Returns
    -------
    callable

    Examples
    --------
    >>> k = gaussian_kernel(1.0)
    >>> k(torch.zeros(2, 3), torch.zeros(1, 3)).shape
    torch.Size([2, 1])
    """
    bandwidth = check_float(bandwidth, "bandwidth", "gaussian_kernel", low=0.0, low_open=True)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # (n_a, n_b)
        return torch.exp(-d2.clamp_min(0.0) / (2.0 * bandwidth**2))

    return kernel


def kernel_ridge(x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                 kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], reg: float = 1e-6) -> torch.Tensor:
    r"""Kernel ridge regression fitted on a support set and evaluated on queries:
    :math:`K_{qs}\,(K_{ss} + \lambda\,\tfrac{\operatorname{tr} K_{ss}}{n_s} I)^{-1} Y_s`.

    The regulariser is scaled by the mean diagonal of :math:`K_{ss}`, as in the KIP
    reference, so ``reg`` does not depend on the kernel's scale.

    Parameters
    ----------
    x_support : Tensor of shape (n_s, ...)
        Support inputs (flattened from dimension 1 before the kernel sees them).
    y_support : Tensor of shape (n_s, C) or (n_s,)
        Support targets (e.g. centred one-hot labels).
    x_query : Tensor of shape (m, ...)
        Points at which the fitted function is evaluated.
    kernel : callable
        ``kernel(a, b)`` returns the Gram matrix of shape (n_a, n_b).
    reg : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    Tensor of shape (m, C) (or (m,) for 1-D targets)

    References
    ----------
    T. Nguyen, Z. Chen, J. Lee, "Dataset Meta-Learning from Kernel Ridge-Regression", ICLR 2021.

    Examples
    --------
    >>> xs = torch.randn(4, 2, dtype=torch.float64); ys = torch.eye(4, dtype=torch.float64)
    >>> kernel_ridge(xs, ys, xs, gaussian_kernel(1.0), reg=0.0).diagonal().round(decimals=6).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    func = "kernel_ridge"
    x_support = check_tensor(x_support, "x_support", func, floating=True, min_rows=1)
    y_support = check_tensor(y_support, "y_support", func, ndim=(1, 2), floating=True)
    x_query = check_tensor(x_query, "x_query", func, floating=True, min_rows=1)
    if y_support.shape[0] != x_support.shape[0]:
        fail(func, "y_support", f"a tensor with one row per support example ({x_support.shape[0]})", y_support)
    if x_query[0].numel() != x_support[0].numel():
        fail(func, "x_query", f"a tensor with {x_support[0].numel()} features per example like x_support", x_query)
    if not callable(kernel):
        fail(func, "kernel", "a callable (a, b) -> Gram matrix", kernel, error=TypeError)
    reg = check_float(reg, "reg", func, low=0.0)
    return _kernel_ridge(x_support.flatten(1), y_support, x_query.flatten(1), kernel, reg)


def _kernel_ridge(x_support, y_support, x_query, kernel, reg: float) -> torch.Tensor:
    k_ss = kernel(x_support, x_support)  # (n_s, n_s)
    k_qs = kernel(x_query, x_support)  # (m, n_s)
    n_s = k_ss.shape[0]
    eye = torch.eye(n_s, dtype=k_ss.dtype, device=k_ss.device)
    k_reg = k_ss + reg * torch.trace(k_ss) / n_s * eye
    return k_qs @ torch.linalg.solve(k_reg, y_support)
