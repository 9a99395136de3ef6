"""Adversarial DeepFool coresets: keep the examples that lie closest to the decision boundary.

Ducoffe & Precioso, "Adversarial Active Learning for Deep Networks: a Margin Based Approach"
(arXiv:1802.09841, 2018) measure the distance of each example to the decision boundary by the
norm of its DeepFool perturbation (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a Simple and
Accurate Method to Fool Deep Neural Networks", CVPR 2016): linearise the classifier, step to
the nearest linearised boundary, repeat until the predicted label changes. The examples with
the **smallest** perturbation are kept. For an affine classifier the first step is exact: the
score is the distance to the boundary (plus DeepFool's push of 1e-4 / ||w|| across it).

Without ``model=`` the method trains the proxy of :func:`~distillkit.coresets.proxy.train_proxy`
(an MLP with one hidden layer), seeded by ``generator``, and perturbs its inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._validation import check_bool, check_float, check_generator, check_int, check_tensor, fail
from ._base import check_common, make_selection, register, resolve_features, select_by_score
from .proxy import _fit_proxy

__all__ = ["DeepFoolResult", "deepfool", "deepfool_perturbation", "deepfool_scores"]


class DeepFoolResult(NamedTuple):
    """What :func:`deepfool_perturbation` returns."""

    perturbation: torch.Tensor  # (n, ...) like x: the accumulated steps r, before the overshoot
    steps: torch.Tensor  # (n,) int64: linearisation steps taken
    converged: torch.Tensor  # (n,) bool: the predicted label changed within max_iter steps


def deepfool_perturbation(model: nn.Module, x: torch.Tensor, *, max_iter: int = 50, overshoot: float = 0.02,
                          batch_size: int = 256, progress: bool = False) -> DeepFoolResult:
    """DeepFool's minimal perturbation of every example, in batches on ``x.device``.

    At the iterate ``x_i = x + (1 + overshoot) r`` with original prediction ``p``, every class
    ``k != p`` gives ``w_k = grad f_k - grad f_p`` and ``f'_k = f_k - f_p``; the nearest
    linearised boundary is ``l = argmin_k |f'_k| / ||w_k||`` and the step
    ``(|f'_l| + 1e-4) / ||w_l||^2 w_l`` is added to ``r``, until the label of ``x_i`` is no
    longer ``p`` or ``max_iter`` steps were taken. The model runs in eval mode with frozen
    parameters; its ``requires_grad`` flags and train/eval mode are restored, ``x`` is untouched.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits of shape (n, n_classes), on the device of ``x``.
    x : Tensor of shape (n, ...)
        Inputs (cast to the model's dtype for the computation).
    max_iter : int
        Most linearisation steps per example (50 in DeepFool and DeepCore).
    overshoot : float
        The label is checked at ``x + (1 + overshoot) r``, which makes sure it flips.
    batch_size : int
        Examples per batch; a step costs one forward and ``n_classes`` backward passes.
    progress : bool
        A progress bar over batches.

    Returns
    -------
    DeepFoolResult
        ``perturbation`` (n, ...) in x's dtype, ``steps`` (n,) and ``converged`` (n,), on CPU
        except ``perturbation`` (on x's device).

    References
    ----------
    Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a Simple and Accurate Method to Fool Deep
    Neural Networks", CVPR 2016.

    Examples
    --------
    >>> lin = nn.Linear(2, 2); _ = lin.weight.data.copy_(torch.tensor([[1., 0.], [-1., 0.]])); _ = lin.bias.data.zero_()
    >>> deepfool_perturbation(lin, torch.tensor([[1.0, 5.0]])).perturbation.round(decimals=3)
    tensor([[-1.,  0.]])
    """
    return _deepfool(*_check_deepfool(model, x, max_iter, overshoot, batch_size, progress, "deepfool_perturbation"))


def _check_deepfool(model, x, max_iter, overshoot, batch_size, progress, func):
    x = check_tensor(x, "x", func, floating=True, min_rows=1, min_ndim=2)
    if not isinstance(model, nn.Module):
        fail(func, "model", "an nn.Module", model, error=TypeError)
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        fail(func, "model", f"on the device of x ({x.device})", f"<a model on {param.device}>")
    return (model, x, check_int(max_iter, "max_iter", func, low=1), check_float(overshoot, "overshoot", func, low=0.0),
            check_int(batch_size, "batch_size", func, low=1), check_bool(progress, "progress", func), func)


def _deepfool(model, x, max_iter, overshoot, batch_size, progress, func) -> DeepFoolResult:
    from tqdm.auto import trange

    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    dtype = next(model.parameters(), x).dtype
    parts = []
    try:
        model.eval()  # examples must not interact (batch norm in train mode would couple them)
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.enable_grad():
            for s in trange(0, x.shape[0], batch_size, disable=not progress, desc="deepfool", leave=False):
                parts.append(_deepfool_batch(model, x[s:s + batch_size].detach().to(dtype), max_iter, overshoot, func))
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    r, steps, converged = (torch.cat(t) for t in zip(*parts))
    return DeepFoolResult(r.to(x.dtype), steps.cpu(), converged.cpu())


def _deepfool_batch(model, x0, max_iter, overshoot, func):
    b = x0.shape[0]
    r = torch.zeros_like(x0)
    steps = torch.zeros(b, dtype=torch.int64, device=x0.device)
    converged = torch.zeros(b, dtype=torch.bool, device=x0.device)
    active = torch.arange(b, device=x0.device)  # rows still on their original side
    label = None
    for it in range(max_iter + 1):
        xi = (x0[active] + (1 + overshoot) * r[active]).requires_grad_(True)
        f = model(xi)  # (m, C) logits
        if f.dim() != 2 or f.shape[1] < 2:
            fail(func, "model", "a classifier returning logits of shape (n, n_classes) with n_classes >= 2",
                 f"<logits of shape {tuple(f.shape)}>")
        if label is None:
            label = f.argmax(1).detach()  # (b,) original predictions p
        lab = label[active]
        flipped = f.argmax(1) != lab
        converged[active[flipped]] = True
        if it == max_iter or bool(flipped.all()):
            break
        rows = torch.arange(f.shape[0], device=f.device)
        jac = torch.stack([torch.autograd.grad(f[:, c].sum(), xi, retain_graph=c < f.shape[1] - 1)[0].flatten(1)
                           for c in range(f.shape[1])], 1)  # (m, C, D): rows are independent in eval mode
        w = jac - jac[rows, lab].unsqueeze(1)  # (m, C, D): grad f_k - grad f_p
        fd = (f - f[rows, lab].unsqueeze(1)).detach().abs()  # (m, C): |f_k - f_p|
        wn = w.norm(dim=2).clamp_min(torch.finfo(w.dtype).tiny)  # (m, C)
        ratio = torch.where(wn > torch.finfo(w.dtype).tiny, fd / wn, torch.inf)  # zero gradient: no boundary
        ratio[rows, lab] = torch.inf
        best = ratio.argmin(1)  # (m,): the nearest linearised boundary l
        ok = torch.isfinite(ratio[rows, best]) & ~flipped
        step = ((fd[rows, best] + 1e-4) / wn[rows, best] ** 2).unsqueeze(1) * w[rows, best]  # (m, D)
        active = active[ok]
        r[active] += step[ok].reshape((-1,) + x0.shape[1:])
        steps[active] += 1
        if active.numel() == 0:
            break
    return r.detach(), steps, converged


def deepfool_scores(model: nn.Module, x: torch.Tensor, *, max_iter: int = 50, overshoot: float = 0.02,
                    batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Distance of every example to the decision boundary: the norm of its DeepFool perturbation.

    Smaller is closer; Adversarial DeepFool keeps the smallest. Examples whose label did not
    change within ``max_iter`` steps (or whose logit differences have zero gradient) score
    ``inf``: no boundary was found. Parameters are those of :func:`deepfool_perturbation`.

    Parameters
    ----------
    model : nn.Module
        A trained classifier (evaluated in eval mode).
    x : Tensor of shape (n, ...)
        Inputs whose distance to the decision boundary is estimated.
    max_iter, overshoot, batch_size, progress :
        See :func:`deepfool_perturbation`.

    Returns
    -------
    Tensor of shape (n,)
        ``||r||_2`` per example, in x's dtype, on x's device.

    References
    ----------
    Ducoffe & Precioso, "Adversarial Active Learning for Deep Networks: a Margin Based
    Approach", arXiv:1802.09841, 2018.

    Examples
    --------
    >>> lin = nn.Linear(2, 2); _ = lin.weight.data.copy_(torch.tensor([[1., 0.], [-1., 0.]])); _ = lin.bias.data.zero_()
    >>> deepfool_scores(lin, torch.tensor([[1.0, 5.0], [-3.0, 0.0]])).round(decimals=3)  # |x_0|
    tensor([1., 3.])
    """
    r, _, converged = _deepfool(*_check_deepfool(model, x, max_iter, overshoot, batch_size, progress,
                                                  "deepfool_scores"))
    scores = r.flatten(1).norm(dim=1)
    return torch.where(converged.to(scores.device), scores, torch.inf)


@register("deepfool")
def deepfool(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False,
             max_iter=50, overshoot=0.02, batch_size=256, proxy_epochs=30):
    """Adversarial DeepFool: keep the examples with the smallest DeepFool perturbation.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep (exact per class when ``per_class``).
    per_class : bool
        Balanced per-class budgets (largest remainder) or one global ranking.
    features : Tensor of shape (n, d), optional
        Only without ``model``: the proxy is trained on ``features`` and DeepFool runs there.
    model : nn.Module, optional
        The classifier whose boundary is measured (DeepFool perturbs its inputs ``x``).
        Without it, a proxy is trained on ``x`` (or ``features``) for ``proxy_epochs``.
    generator : torch.Generator, int or None
        Seeds the proxy (the scores themselves are deterministic).
    progress : bool
        Progress bars over the proxy's epochs and the DeepFool batches.
    max_iter, overshoot, batch_size :
        See :func:`deepfool_perturbation`.
    proxy_epochs : int
        Training epochs of the proxy network trained when no ``model`` is given.

    Returns
    -------
    Selection
        Indices from the closest to the farthest kept example; ``scores`` are the distances.

    References
    ----------
    Ducoffe & Precioso, arXiv:1802.09841, 2018; Moosavi-Dezfooli et al., CVPR 2016.

    Examples
    --------
    >>> x = torch.tensor([[0.1], [3.0], [-0.2], [-4.0]]); y = torch.tensor([0, 0, 1, 1])
    >>> lin = nn.Linear(1, 2); _ = lin.weight.data.copy_(torch.tensor([[-1.], [1.]])); _ = lin.bias.data.zero_()
    >>> deepfool(x, y, 2, model=lin).indices.tolist()
    [0, 2]
    """
    x, y, budget = check_common(x, y, budget, "deepfool", per_class=per_class, progress=progress)
    progress = check_bool(progress, "progress", "deepfool")
    space, proxy = x, model is None
    if proxy:
        space = x if features is None else resolve_features(x, features, None, "deepfool")
        model = _fit_proxy(space, y, proxy_epochs, generator, "deepfool", progress)
    elif features is not None:
        fail("deepfool", "features", "None when model is given (DeepFool perturbs the inputs x of model)", features)
    else:
        check_generator(generator, "deepfool")
    scores = deepfool_scores(model, space, max_iter=max_iter, overshoot=overshoot, batch_size=batch_size,
                             progress=progress)
    info = {"per_class": per_class, "unconverged": int(torch.isinf(scores).sum()), "proxy": proxy}
    idx = select_by_score(scores, budget, y=y, order="bottom", per_class=per_class)  # inf (no boundary) ranks last
    return make_selection(idx, method="deepfool", scores=scores, info=info)
