"""Closed-form ridge regression (the second stage of two-stage training) and the relative
test error used throughout the theory chapter.

References: Hoerl & Kennard, "Ridge regression: biased estimation for nonorthogonal
problems", Technometrics, 1970.
"""

from __future__ import annotations

import torch

from .._validation import check_float, check_tensor, fail

__all__ = ["ridge_fit", "relative_mse"]


def ridge_fit(features: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """:math:`\\arg\\min_a \\frac1n\\lVert \\Phi a - y\\rVert^2 + \\lambda\\lVert a\\rVert^2
    = (\\Phi^\\top\\Phi/n + \\lambda I)^{-1}\\Phi^\\top y/n`.

    Solved in float64 with a Cholesky factorisation; the result has ``features``' dtype.

    Parameters
    ----------
    features : Tensor of shape (n, L)
        The feature matrix :math:`\\Phi`, one row per example.
    y : Tensor of shape (n,)
        Targets.
    lam : float
        Ridge parameter, > 0.

    Returns
    -------
    a : Tensor of shape (L,)

    References
    ----------
    Hoerl & Kennard, "Ridge regression", Technometrics, 1970.

    Examples
    --------
    >>> a = ridge_fit(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]), 1e-9)
    >>> torch.allclose(a, torch.tensor([1.0, 2.0, 3.0]), atol=1e-5)
    True
    """
    func = "ridge_fit"
    features = check_tensor(features, "features", func, ndim=2, floating=True, min_rows=1)
    y = check_tensor(y, "y", func, ndim=1, floating=True)
    if y.shape[0] != features.shape[0]:
        fail(func, "y", f"a tensor with one entry per row of features ({features.shape[0]} rows)", y)
    lam = check_float(lam, "lam", func, low=0.0, low_open=True)
    return _ridge(features, y, lam)


def _ridge(features, y, lam):
    phi, n = features.double(), features.shape[0]
    gram = phi.T @ phi / n + lam * torch.eye(phi.shape[1], dtype=phi.dtype, device=phi.device)
    chol = torch.linalg.cholesky(gram)
    a = torch.cholesky_solve((phi.T @ y.double() / n)[:, None], chol)[:, 0]
    return a.to(features.dtype)


def relative_mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Test error as a fraction of the label variance: :math:`\\mathrm{mean}((\\hat y -
    y)^2) / \\mathrm{Var}(y)`. 0 is perfect; 1 is what predicting the mean gets.

    Parameters
    ----------
    pred : Tensor of shape (n,)
        Predictions :math:`\\hat y`.
    y : Tensor of shape (n,)
        True targets; their variance must be positive.

    Examples
    --------
    >>> relative_mse(torch.zeros(4), torch.tensor([1.0, -1.0, 1.0, -1.0]))
    1.0
    """
    pred = check_tensor(pred, "pred", "relative_mse", ndim=1, floating=True)
    y = check_tensor(y, "y", "relative_mse", ndim=1, floating=True)
    if pred.shape != y.shape:
        fail("relative_mse", "pred", f"a tensor of the shape of y {tuple(y.shape)}", pred)
    return float(((pred.double() - y.double()) ** 2).mean() / y.double().var(unbiased=False))
