"""Kernel Inducing Points (KIP): a small support set whose kernel ridge regression predicts
a real batch well.

Nguyen, Chen & Lee, "Dataset Meta-Learning from Kernel Ridge-Regression", ICLR 2021, and
Nguyen, Novak, Xiao & Lee, "Dataset Distillation with Infinitely Wide Convolutional
Networks", NeurIPS 2021. A network trained to convergence with a small learning rate in
the infinite-width limit is kernel regression with its neural tangent kernel (NTK), so the
inner training run of DD has a closed form: with centred one-hot labels ``Y_s``::

    pred(x_t) = K_ts (K_ss + reg * tr(K_ss)/n_s * I)^{-1} Y_s,
    loss = 0.5 * mean((pred - Y_t)^2),

and the support images (and optionally their labels) follow the gradient of that loss
(Adam, learning rate 0.04, as the reference notebook).

The papers use the *infinite-width* NTK of fully connected and convolutional networks
computed with neural-tangents (JAX), on hundreds of GPUs for the ConvNet kernels. Here the
kernel is one you can compute on a laptop, so this is our reconstruction
(:mod:`distillkit.distill.kernels`):

* ``kernel="ntk"`` (default): the *empirical* NTK ``J(a) J(b)^T`` of a small finite
  network (default a one-hidden-layer MLP of width 128 with one output), averaged over
  ``n_models`` random initialisations, with the Jacobians from :mod:`torch.func`;
* ``kernel="rbf"``: a Gaussian kernel whose bandwidth is the median pairwise distance of a
  sample of the real data (the median heuristic);
* or any callable ``(a, b) -> Gram matrix`` on flattened inputs.
"""

from __future__ import annotations

import time

import torch
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_int, check_option
from ..types import SyntheticSet
from ._base import (
    ClassSampler,
    _check_callback,
    _check_final,
    _check_label_range,
    _init_synthetic,
    _snapshot,
    check_ipc,
    register,
)
from .kernels import (  # noqa: F401  (importable from here, as before)
    _check_kernel,
    _linear,
    _make_kernel,
    _ntk_features,
    empirical_ntk,
    make_kernel,
    median_bandwidth,
    ntk_features,
)
from .losses import _kernel_ridge

__all__ = ["kip"]


@register("kip")
def kip(x: torch.Tensor, y: torch.Tensor, ipc: int, *, kernel="ntk", model_fn=None, n_models: int = 4,
        steps: int = 1000, lr: float = 0.04, reg: float = 1e-6, learn_labels: bool = False, batch_real: int = 5000,
        cache_bytes: int = 2**30, init: str = "real", generator=None, callback=None, callback_every: int | None = None,
        progress: bool = False) -> SyntheticSet:
    """Kernel Inducing Points: Adam on the support images (and labels) of kernel ridge regression.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    ipc : int
        Synthetic examples per class.
    kernel : {"ntk", "rbf"} or callable
        See the module docstring; a callable receives flattened inputs.
    model_fn, n_models :
        Network and number of initialisations of the empirical NTK.
    steps : int
        Adam steps on the support set.
    lr : float
        Adam learning rate (reference 0.04).
    reg : float
        Ridge, relative to the mean diagonal of K_ss (reference 1e-6).
    learn_labels : bool
        Also learn the support's regression targets (returned as ``y``, float (m, C)).
    batch_real : int
        Class-balanced real target batch per step (reference 5000; at most the data).
    cache_bytes : int
        For ``kernel="ntk"``: the NTK features of all real data are computed once when they
        take at most this many bytes, else those of each target batch at every step.
    init : {"real", "noise"}
        Start from random real examples of each class ("real") or from standard Gaussian noise
        ("noise").
    generator : torch.Generator, int or None
        Source of every random draw: initialisation, networks, real batches, augmentation.
    callback : callable ``(step, x_syn, info)``, optional
        Called as ``callback(step, x_syn, info)`` to snapshot progress (for notebooks and widgets).
    callback_every : int, optional
        Snapshot period; default ``steps // 10``.
    progress : bool
        Show a progress bar over the steps.

    Returns
    -------
    SyntheticSet
        ``y`` is the int64 class of each support image, or the learned targets when
        ``learn_labels`` (centred regression targets, float (m, C): for a network trained
        with cross-entropy use their argmax or a softmax of them). ``info`` holds
        ``losses``, ``times`` (per step), ``time_per_step``, ``skipped``,
        ``hyperparameters``, ``labels`` (the centred regression targets), ``kernel_fn`` (the
        kernel callable) and ``accuracies`` (the KRR accuracy on each target batch).

    References
    ----------
    T. Nguyen, Z. Chen, J. Lee, "Dataset Meta-Learning from Kernel Ridge-Regression", ICLR 2021.
    T. Nguyen, R. Novak, L. Xiao, J. Lee, "Dataset Distillation with Infinitely Wide
    Convolutional Networks", NeurIPS 2021.

    Examples
    --------
    >>> x, y = torch.randn(60, 4), torch.arange(60) % 3
    >>> s = kip(x, y, 2, kernel="rbf", steps=5, batch_real=30, generator=0)
    >>> tuple(s.x.shape), s.y.tolist()
    ((6, 4), [0, 0, 1, 1, 2, 2])
    """
    func = "kip"
    x, y, ipc, classes = check_ipc(x, y, ipc, func)
    kind = _check_kernel(kernel, func)
    n_models = check_int(n_models, "n_models", func, low=1)
    steps = check_int(steps, "steps", func, low=1)
    lr = check_float(lr, "lr", func, low=0.0, low_open=True)
    reg = check_float(reg, "reg", func, low=0.0)
    learn_labels = check_bool(learn_labels, "learn_labels", func)
    batch_real = check_int(batch_real, "batch_real", func, low=len(classes))
    cache_bytes = check_int(cache_bytes, "cache_bytes", func, low=0)
    init = check_option(init, "init", func, ("real", "noise"))
    progress = check_bool(progress, "progress", func)
    gen = check_generator(generator, func)
    callback_every = _check_callback(callback, callback_every, steps, func)

    _check_label_range(y, func, "the regression targets have one column per label up to the largest")
    n_classes = int(max(classes)) + 1
    kernel_fn, models = _make_kernel(kernel, kind, x, model_fn, n_models, gen, func)
    cache = None
    if models is not None:  # the NTK is an inner product of features: compute the real side once if it fits
        with torch.no_grad():
            n_features = sum(sum(p.numel() for p in m.parameters()) * m(x[:1]).shape[1] for m in models)
        if x.shape[0] * n_features * x.element_size() <= cache_bytes:
            with torch.no_grad():
                cache = _ntk_features(models, x, 256)  # (n, F)
    x_syn, y_syn = _init_synthetic(x, y, ipc, init, gen)
    x_syn.requires_grad_(True)
    labels = (F.one_hot(y_syn, n_classes).to(x.dtype) - 1.0 / n_classes).requires_grad_(learn_labels)
    opt = torch.optim.Adam([x_syn, labels] if learn_labels else [x_syn], lr=lr)
    sampler = ClassSampler(y)
    sizes = [batch_real // len(classes) + (1 if i < batch_real % len(classes) else 0) for i in range(len(classes))]
    hyper = dict(kernel=kernel if isinstance(kernel, str) else "callable", n_models=n_models, steps=steps, lr=lr,
                 reg=reg, learn_labels=learn_labels, batch_real=batch_real, init=init)
    info = {"losses": [], "accuracies": [], "times": [], "skipped": [], "hyperparameters": hyper}
    history = []
    _snapshot(history, 0, x_syn, callback, info)

    from tqdm.auto import trange

    for step in trange(1, steps + 1, disable=not progress, desc="kip", leave=False):
        tic = time.perf_counter()
        idx = torch.cat([sampler.sample(c, k, gen) for c, k in zip(classes, sizes)]).to(x.device)
        y_t = F.one_hot(y[idx], n_classes).to(x.dtype) - 1.0 / n_classes  # (b, C), centred
        if models is None:  # the inputs are valid: call kernel_ridge's core directly
            pred = _kernel_ridge(x_syn.flatten(1), labels, x[idx].flatten(1), kernel_fn, reg)
        else:
            with torch.no_grad():
                f_t = cache[idx] if cache is not None else _ntk_features(models, x[idx], 256)
            pred = _kernel_ridge(_ntk_features(models, x_syn, 256), labels, f_t, _linear, reg)
        loss = 0.5 * ((pred - y_t) ** 2).mean()
        grads = torch.autograd.grad(loss, [x_syn, labels] if learn_labels else [x_syn])
        if not (torch.isfinite(loss) and all(bool(torch.isfinite(g).all()) for g in grads)):
            info["skipped"].append(step)
        else:
            x_syn.grad = grads[0]
            if learn_labels:
                labels.grad = grads[1]
            opt.step()
        info["losses"].append(float(loss.detach()))
        info["accuracies"].append(float((pred.detach().argmax(1) == y[idx]).float().mean()))
        info["times"].append(time.perf_counter() - tic)
        if step % callback_every == 0 or step == steps:
            _snapshot(history, step, x_syn, callback, info)
    _check_final(func, x_syn, info["skipped"], steps)
    info.update(labels=labels.detach(), kernel_fn=kernel_fn, time_per_step=sum(info["times"]) / len(info["times"]))
    y_out = labels.detach() if learn_labels else y_syn
    return SyntheticSet(x_syn.detach(), y_out, history=history, method="kip", info=info)
