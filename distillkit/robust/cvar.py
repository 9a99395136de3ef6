"""Conditional value at risk (CVaR) of a sample of losses, differentiable.

CVaR is the risk measure of Rockafellar & Uryasev (2000). For a loss :math:`\\ell` and a
level :math:`\\alpha \\in (0, 1)`,

.. math::

    \\mathrm{CVaR}_\\alpha(\\ell) = \\min_\\tau \\; \\tau + \\frac{\\mathbb{E}[(\\ell - \\tau)_+]}{1 - \\alpha},

the mean of the worst (largest) :math:`1 - \\alpha` fraction of the losses: the **upper**
tail. For an empirical sample of :math:`n` losses the tail holds :math:`m = (1 - \\alpha) n`
examples; when :math:`m` is not an integer the boundary example enters with the fractional
weight :math:`m - \\lfloor m \\rfloor`, exactly as the minimisation over :math:`\\tau` gives.
:math:`\\alpha \\to 0` gives the mean, :math:`\\alpha \\to 1` the maximum.

Convention warning: the code released with Vahidian et al. (ICLR 2025) calls its level
``alpha`` too, but averages the **lowest** ``alpha`` fraction of the losses (see
:func:`distillkit.robust.target.released_cvar`). ``alpha=0.8`` there is not ``alpha=0.8``
here.

The value is computed as a weighted sum :math:`\\sum_i q_i \\ell_i` with weights that depend
only on the order of the losses, so gradients flow to the losses of the tail. Ties are
shared: examples with equal losses get equal weights (the symmetric subgradient), so the
result does not depend on how a sort breaks ties.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_float, check_tensor, fail

__all__ = ["cvar", "cvar_weights", "group_cvar_risk", "group_cvar_weights"]


def _no_meta(t, param: str, func: str) -> None:
    if isinstance(t, torch.Tensor) and t.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(t.shape)}>")


def _check_losses(losses, func: str) -> torch.Tensor:
    _no_meta(losses, "losses", func)
    losses = check_tensor(losses, "losses", func, ndim=1, floating=True)
    if losses.numel() == 0:
        fail(func, "losses", "a non-empty 1-D tensor", losses)
    return losses


def _tail_size(n: int, alpha: float) -> float:
    """(1 - alpha) * n, snapped to the nearest integer when it is within rounding error."""
    m = (1.0 - alpha) * n
    if abs(m - round(m)) < 1e-9 * max(1.0, m):
        m = float(round(m))
    return m


def _cvar_weights(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """Core of :func:`cvar_weights` for valid input: tie-shared tail weights, shape (n,)."""
    n = losses.numel()
    m = _tail_size(n, alpha)
    full = math.floor(m)
    detached = losses.detach()
    order = torch.argsort(detached, descending=True, stable=True)  # worst first
    w_sorted = torch.zeros(n, dtype=losses.dtype, device=losses.device)
    w_sorted[:full] = 1.0
    if full < n and m > full:
        w_sorted[full] = m - full  # the fractional boundary example
    w_sorted /= m
    # share the weight equally within runs of equal losses (symmetric subgradient)
    _, inverse, counts = torch.unique_consecutive(detached[order], return_inverse=True, return_counts=True)
    run_sum = torch.zeros(counts.numel(), dtype=losses.dtype, device=losses.device).index_add_(0, inverse, w_sorted)
    w_sorted = (run_sum / counts.to(losses.dtype))[inverse]
    weights = torch.empty_like(w_sorted)
    weights[order] = w_sorted
    return weights


def cvar_weights(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """The weights :math:`q` with :math:`\\mathrm{CVaR}_\\alpha = \\sum_i q_i \\ell_i`.

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Finite losses (only their order matters).
    alpha : float
        Level in (0, 1); the tail is the worst ``1 - alpha`` fraction.

    Returns
    -------
    Tensor of shape (n,)
        Non-negative weights summing to one, at most ``1 / ((1 - alpha) n)`` each, zero outside
        the tail; equal losses get equal weights. No gradient.

    References
    ----------
    R. T. Rockafellar and S. Uryasev, "Optimization of Conditional Value-at-Risk",
    Journal of Risk 2(3), 2000.

    Examples
    --------
    >>> cvar_weights(torch.tensor([1.0, 4.0, 2.0, 3.0]), 0.5)
    tensor([0.0000, 0.5000, 0.0000, 0.5000])
    """
    losses = _check_losses(losses, "cvar_weights")
    alpha = check_float(alpha, "alpha", "cvar_weights", low=0.0, high=1.0, low_open=True, high_open=True)
    return _cvar_weights(losses, alpha)


def cvar(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """Upper-tail conditional value at risk of a sample of losses.

    ``cvar(losses, alpha)`` is the mean of the worst ``1 - alpha`` fraction of ``losses``,
    with the Rockafellar-Uryasev convention for a fractional tail:
    ``min_tau tau + mean((losses - tau)_+) / (1 - alpha)``. Gradients flow to the losses
    in the tail (see :func:`cvar_weights`).

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Finite per-example losses, n >= 1.
    alpha : float
        Level in (0, 1). ``alpha=0.8`` averages the worst 20% of the losses. (The released code
        of Vahidian et al. uses the opposite, lower-tail convention.)

    Returns
    -------
    Tensor of shape ()
        A scalar on the device of ``losses``, differentiable with respect to them.

    References
    ----------
    R. T. Rockafellar and S. Uryasev, "Optimization of Conditional Value-at-Risk",
    Journal of Risk 2(3), 2000.

    Examples
    --------
    >>> cvar(torch.arange(1.0, 11.0), 0.8)  # mean of the worst two of 1..10
    tensor(9.5000)
    >>> cvar(torch.arange(1.0, 11.0), 0.75)  # 2.5 examples: (10 + 9 + 0.5 * 8) / 2.5
    tensor(9.2000)
    """
    losses = _check_losses(losses, "cvar")
    alpha = check_float(alpha, "alpha", "cvar", low=0.0, high=1.0, low_open=True, high_open=True)
    return (_cvar_weights(losses, alpha) * losses).sum()


def _group_weights(losses: torch.Tensor, groups: torch.Tensor, alpha: float, use_max: bool) -> torch.Tensor:
    """Core of :func:`group_cvar_weights` for valid input."""
    ids = torch.unique(groups)
    q = torch.zeros_like(losses.detach())
    values = []
    members = []
    for j in ids.tolist():
        idx = (groups == j).nonzero().squeeze(1)
        w = _cvar_weights(losses[idx], alpha)
        members.append((idx, w))
        values.append((w * losses.detach()[idx]).sum())
    values = torch.stack(values)  # (J,) group CVaRs
    share = torch.full_like(values, 1.0 / ids.numel())  # the mean over groups
    if use_max:
        top = values == values.max()
        share = share + top.to(values.dtype) / top.sum()  # the worst group(s), ties shared
    for (idx, w), s in zip(members, share):
        q[idx] += s * w
    return q


def _check_groups(losses, groups, alpha, use_max, func):
    losses = _check_losses(losses, func)
    _no_meta(groups, "groups", func)
    groups = check_tensor(groups, "groups", func, ndim=1, floating=False)
    if groups.shape[0] != losses.shape[0]:
        fail(func, "groups", f"a tensor with one group id per loss ({losses.shape[0]})", groups)
    alpha = check_float(alpha, "alpha", func, low=0.0, high=1.0, low_open=True, high_open=True)
    if not isinstance(use_max, bool):
        fail(func, "use_max", "a bool", use_max, error=TypeError)
    return losses, groups.to(losses.device), alpha


def group_cvar_weights(losses: torch.Tensor, groups: torch.Tensor, alpha: float, *,
                       use_max: bool = True) -> torch.Tensor:
    """Per-example weights ``q`` of the group risk: ``group_cvar_risk = sum_i q_i losses_i``.

    ``q`` is also the gradient of the risk with respect to the losses, so the gradient of the
    risk with respect to network parameters is the ``q``-weighted sum of per-example gradients.

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Per-example losses.
    groups : Tensor of shape (n,), integer
        Group id of every example. Only ids that occur count as groups (an empty group has no
        loss and no risk).
    alpha : float
        CVaR level in (0, 1), upper tail (see :func:`cvar`).
    use_max : bool
        Add the worst group's CVaR to the mean over groups.

    Returns
    -------
    Tensor of shape (n,)
        Non-negative, summing to 1 (``use_max=False``) or 2 (``use_max=True``). No gradient.

    Examples
    --------
    >>> group_cvar_weights(torch.tensor([1.0, 3.0, 2.0, 2.0]), torch.tensor([0, 0, 1, 1]), 0.5)
    tensor([0.0000, 1.5000, 0.2500, 0.2500])
    """
    losses, groups, alpha = _check_groups(losses, groups, alpha, use_max, "group_cvar_weights")
    return _group_weights(losses, groups, alpha, use_max)


def group_cvar_risk(losses: torch.Tensor, groups: torch.Tensor, alpha: float, *,
                    use_max: bool = True) -> torch.Tensor:
    """The group risk ``mean_j CVaR_alpha(G_j) + max_j CVaR_alpha(G_j)``, differentiable.

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Per-example losses.
    groups : Tensor of shape (n,), integer
        Group id of every example; groups are the ids that occur.
    alpha : float
        CVaR level in (0, 1), upper tail: each group contributes the mean of its worst
        ``1 - alpha`` fraction.
    use_max : bool
        Keep the worst-group term (``False`` gives ``mean_j CVaR_alpha(G_j)`` alone).

    Returns
    -------
    Tensor of shape ()
        Gradients flow to the losses in every group's tail (see :func:`group_cvar_weights`).

    References
    ----------
    S. Vahidian, M. Wang, J. Gu, V. Kungurtsev, W. Jiang and Y. Chen, "Group Distributionally
    Robust Dataset Distillation with Risk Minimization", ICLR 2025.

    Examples
    --------
    >>> losses = torch.tensor([1.0, 3.0, 2.0, 2.0])
    >>> group_cvar_risk(losses, torch.tensor([0, 0, 1, 1]), 0.5)  # (3 + 2) / 2 + 3
    tensor(5.5000)
    """
    losses, groups, alpha = _check_groups(losses, groups, alpha, use_max, "group_cvar_risk")
    return (_group_weights(losses, groups, alpha, use_max) * losses).sum()
