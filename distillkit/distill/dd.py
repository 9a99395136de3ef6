"""Dataset Distillation (DD): learn the synthetic images *and* the learning rates of a short
training run by differentiating through that run.

Wang, Zhu, Torralba & Efros, "Dataset Distillation" (arXiv:1811.10959, 2018). The outer
objective is bilevel: with inner steps::

    theta_{k+1} = theta_k - eta_k * grad_theta CE(f(x_syn^(k); theta_k), y_syn^(k)),

the synthetic images and the step sizes ``eta_k`` are chosen so that the network after the
last step classifies *real* data well, ``min CE(f(x_real; theta_T), y_real)``. The gradient
of that outer loss flows back through every inner step (second-order terms included).

What follows the reference (SsnL/dataset-distillation): per-step learnable step sizes kept
positive as the softplus of a raw parameter, initial step size 0.02, 10 step-batches times 3
epochs = 30 unrolled steps, Adam with betas (0.5, 0.999) and learning rate 0.01 on images
and raw step sizes, a fresh random network per outer step (``unknown_init``) or one fixed
network (``fixed_init=True``, the reference's ``known_init``), images initialised from noise.

Our reconstruction: the reference stores ``distilled_images_per_class_per_step`` images per
step; here ``ipc`` is the total per class and the images of each class are split into
``inner_steps`` step-batches (see :func:`step_batches`). The reference back-propagates with
hand-written Hessian-vector products; here autograd does it (the unrolled run is
:func:`~distillkit.distill.unroll.unroll_sgd`, shared with MTT), and ``checkpoint=True``
re-computes each inner step during the backward pass (``torch.utils.checkpoint``) so memory
holds one step's activations instead of all of them.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_int, check_option, fail
from ..types import SyntheticSet
from ._base import (
    _build_model,
    _check_callback,
    _check_final,
    _check_label_range,
    _default_model_fn,
    _init_synthetic,
    _new_net,
    _seed,
    _snapshot,
    check_ipc,
    register,
)
from .unroll import _flat_params, _unflatten, unroll_sgd

__all__ = ["dd", "step_batches", "dd_train"]


def step_batches(ipc: int, inner_steps: int) -> list[torch.Tensor]:
    """Which within-class positions of the synthetic set each inner step uses.

    With ``ipc >= inner_steps`` the ``ipc`` images of each class are split into
    ``inner_steps`` nearly equal consecutive chunks (``ipc == inner_steps`` is the
    reference's one image per class per step); with ``ipc < inner_steps`` step ``k`` uses
    position ``k % ipc``, so every image serves several steps.

    Parameters
    ----------
    ipc : int
        Synthetic images per class.
    inner_steps : int
        Number of unrolled inner steps.

    Examples
    --------
    >>> [t.tolist() for t in step_batches(4, 2)]
    [[0, 1], [2, 3]]
    >>> [t.tolist() for t in step_batches(2, 3)]
    [[0], [1], [0]]
    """
    ipc = check_int(ipc, "ipc", "step_batches", low=1)
    inner_steps = check_int(inner_steps, "inner_steps", "step_batches", low=1)
    if ipc >= inner_steps:
        return list(torch.arange(ipc).tensor_split(inner_steps))
    return [torch.tensor([k % ipc]) for k in range(inner_steps)]


def _batches(x_syn, y_syn, ipc: int, inner_steps: int, inner_epochs: int):
    """The T = inner_steps * inner_epochs (x, y) batches of DD's inner run."""
    m = x_syn.shape[0]
    rows = torch.arange(m).view(m // ipc, ipc)  # (n_classes, ipc): the set is sorted by class
    out = []
    for pos in step_batches(ipc, inner_steps):
        idx = rows[:, pos].reshape(-1).to(x_syn.device)
        out.append((x_syn[idx], y_syn[idx]))
    return out * inner_epochs


def _meta_loss(model, theta0, x_syn, y_syn, raw_lr, x_real, y_real, ipc, inner_steps, inner_epochs, checkpoint):
    """DD's outer objective: CE on real data of the network after the unrolled inner run."""
    batches = _batches(x_syn, y_syn, ipc, inner_steps, inner_epochs)
    theta = unroll_sgd(model, theta0, batches, F.softplus(raw_lr), checkpoint=checkpoint)
    return F.cross_entropy(functional_call(model, _unflatten(model, theta), (x_real,)), y_real)


# ---------------------------------------------------------------- the method
@register("dd")
def dd(x: torch.Tensor, y: torch.Tensor, ipc: int, *, model_fn=None, steps: int = 1000, inner_steps: int = 10,
       inner_epochs: int = 3, lr_init: float = 0.02, lr_meta: float = 0.01, batch_real: int = 1024,
       fixed_init: bool = False, checkpoint: bool = False, init: str = "noise", generator=None, callback=None,
       callback_every: int | None = None, progress: bool = False) -> SyntheticSet:
    """Dataset Distillation: bilevel optimisation through an unrolled training run.

    Each outer step builds a network (a fresh random one, or the same one when
    ``fixed_init``), trains it functionally for ``inner_steps * inner_epochs`` plain SGD
    steps on the synthetic set with the learnable step sizes, measures cross-entropy of the
    result on a random real batch, and takes one Adam step on the images and the raw step
    sizes. Outer steps whose loss or gradients are not finite are skipped (listed in
    ``info["skipped"]``); if every step is skipped, or a step makes the images non-finite, a
    ``FloatingPointError`` says so (never non-finite or unchanged images as a result). ``x``
    must be float32 or float64 (in float16, Adam's steps overflow).

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w) or (n, d)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    ipc : int
        Synthetic images per class.
    model_fn : callable, optional
        ``model_fn(generator=seed)`` builds the network; default ConvNet-3 (width 128) for
        images, an MLP for vectors.
    steps : int
        Outer steps (the reference trains 400 epochs of the real data, about 23,000 steps
        on MNIST).
    inner_steps, inner_epochs : int
        Step-batches per inner epoch and passes over them (T = product of both).
    lr_init : float
        Initial value of every inner step size (> 0).
    lr_meta : float
        Adam learning rate for the images and the raw step sizes.
    batch_real : int
        Real examples per outer step (uniformly at random, at most n).
    fixed_init : bool
        One network initialisation for the whole run instead of a fresh one per step.
    checkpoint : bool
        Gradient checkpointing over the inner steps (less memory, about 1.3x the time).
    init : {"noise", "real"}
        Start from random real examples of each class ("real") or from standard Gaussian noise
        ("noise").
    generator : torch.Generator, int or None
        Source of every random draw: initialisation, networks, real batches, augmentation.
    callback : callable ``(step, x_syn, info)``, optional
        Called every ``callback_every`` steps and after the last one.
    callback_every : int, optional
        Snapshot period; default ``steps // 10``.
    progress : bool
        Show a progress bar over the outer steps.

    Returns
    -------
    SyntheticSet
        ``lr`` is the mean learned step size; ``info["lrs"]`` holds all T of them, in order
        (train with them through :func:`dd_train`); ``info["init_seed"]`` is the seed of the
        first network (the fixed one with ``fixed_init``).

    References
    ----------
    T. Wang, J.-Y. Zhu, A. Torralba, A. A. Efros, "Dataset Distillation", arXiv:1811.10959, 2018.

    Examples
    --------
    >>> from distillkit.data import load_digits
    >>> from distillkit.models import MLP
    >>> x, y = load_digits()
    >>> s = dd(x, y, 1, model_fn=lambda generator: MLP(64, 10, hidden=(16,), generator=generator), steps=2,
    ...        inner_steps=2, inner_epochs=1, generator=0)
    >>> tuple(s.x.shape), len(s.info["lrs"])
    ((10, 1, 8, 8), 2)
    """
    func = "dd"
    x, y, ipc, classes = check_ipc(x, y, ipc, func)
    steps = check_int(steps, "steps", func, low=1)
    inner_steps = check_int(inner_steps, "inner_steps", func, low=1)
    inner_epochs = check_int(inner_epochs, "inner_epochs", func, low=1)
    lr_init = check_float(lr_init, "lr_init", func, low=0.0, low_open=True)
    lr_meta = check_float(lr_meta, "lr_meta", func, low=0.0, low_open=True)
    batch_real = check_int(batch_real, "batch_real", func, low=1)
    fixed_init = check_bool(fixed_init, "fixed_init", func)
    checkpoint = check_bool(checkpoint, "checkpoint", func)
    init = check_option(init, "init", func, ("noise", "real"))
    progress = check_bool(progress, "progress", func)
    gen = check_generator(generator, func)
    callback_every = _check_callback(callback, callback_every, steps, func)
    n_classes = int(max(classes)) + 1
    if model_fn is None:
        _check_label_range(y, func)
    model_fn = _default_model_fn(x, n_classes) if model_fn is None else model_fn
    init_seed = _seed(gen)
    model = _build_model(model_fn, x, n_classes, init_seed, func)

    x_syn, y_syn = _init_synthetic(x, y, ipc, init, gen)
    x_syn.requires_grad_(True)
    n_lrs = inner_steps * inner_epochs
    raw_lr = torch.full((n_lrs,), lr_init, dtype=x.dtype, device=x.device).expm1().log()  # softplus^-1
    raw_lr.requires_grad_(True)
    opt = torch.optim.Adam([x_syn, raw_lr], lr=lr_meta, betas=(0.5, 0.999))
    hyper = dict(steps=steps, inner_steps=inner_steps, inner_epochs=inner_epochs, lr_init=lr_init, lr_meta=lr_meta,
                 batch_real=batch_real, fixed_init=fixed_init, checkpoint=checkpoint, init=init)
    info = {"losses": [], "times": [], "skipped": [], "hyperparameters": hyper, "init_seed": init_seed}
    history = []
    _snapshot(history, 0, x_syn, callback, info)
    theta_fixed = _flat_params(model)

    from tqdm.auto import trange

    for step in trange(1, steps + 1, disable=not progress, desc="dd", leave=False):
        tic = time.perf_counter()
        if fixed_init:
            theta0 = theta_fixed
        else:
            model = _new_net(model_fn, gen, x)
            theta0 = _flat_params(model)
        real = torch.randperm(x.shape[0], generator=gen)[:batch_real].to(x.device)
        loss = _meta_loss(model, theta0, x_syn, y_syn, raw_lr, x[real], y[real], ipc, inner_steps, inner_epochs,
                          checkpoint)
        grads = torch.autograd.grad(loss, [x_syn, raw_lr])
        if not (torch.isfinite(loss) and all(bool(torch.isfinite(g).all()) for g in grads)):
            info["skipped"].append(step)  # never let NaN into the images
        else:
            x_syn.grad, raw_lr.grad = grads
            opt.step()
            if not bool(torch.isfinite(x_syn.detach()).all()):
                raise FloatingPointError(f"dd stopped at step {step}: the Adam step made the synthetic images "
                                         "non-finite (NaN or infinite). Lower lr_meta or standardise x.")
        info["losses"].append(float(loss.detach()))
        info["times"].append(time.perf_counter() - tic)
        if step % callback_every == 0 or step == steps:
            _snapshot(history, step, x_syn, callback, info)
    _check_final(func, x_syn, info["skipped"], steps)
    lrs = F.softplus(raw_lr.detach())
    info.update(lrs=lrs.tolist(), time_per_step=sum(info["times"]) / len(info["times"]))
    return SyntheticSet(x_syn.detach(), y_syn, lr=float(lrs.mean()), history=history, method="dd", info=info)


@torch.no_grad()
def _apply_steps(model, x_syn, y_syn, ipc, inner_steps, inner_epochs, lrs):
    for (xb, yb), lr in zip(_batches(x_syn, y_syn, ipc, inner_steps, inner_epochs), lrs):
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb), yb)
            grads = torch.autograd.grad(loss, list(model.parameters()))
        for p, g in zip(model.parameters(), grads):
            p.sub_(lr * g)
    return model


def dd_train(model: nn.Module, synthetic: SyntheticSet) -> nn.Module:
    """Train ``model`` in place with the learned schedule of a :func:`dd` result: the same
    T plain SGD steps on the same step-batches with the learned step sizes.

    Parameters
    ----------
    model : nn.Module
        A freshly initialised network on the device and dtype of ``synthetic.x``.
    synthetic : SyntheticSet
        The output of :func:`dd`.

    Returns
    -------
    nn.Module
        ``model``, trained.

    References
    ----------
    T. Wang, J.-Y. Zhu, A. Torralba, A. A. Efros, "Dataset Distillation", arXiv:1811.10959, 2018.

    Examples
    --------
    >>> from distillkit.models import MLP
    >>> x, y = torch.randn(20, 4), torch.arange(20) % 2
    >>> s = dd(x, y, 2, model_fn=lambda generator: MLP(4, 2, hidden=(8,), generator=generator), steps=1,
    ...        inner_steps=2, inner_epochs=1, generator=0)
    >>> net = MLP(4, 2, hidden=(8,), generator=1)
    >>> before = [p.clone() for p in net.parameters()]
    >>> any(not torch.equal(a, b) for a, b in zip(before, dd_train(net, s).parameters()))
    True
    """
    if not isinstance(synthetic, SyntheticSet) or synthetic.method != "dd":
        fail("dd_train", "synthetic", "the SyntheticSet returned by dd", synthetic, error=TypeError)
    if not isinstance(model, nn.Module):
        fail("dd_train", "model", "an nn.Module", model, error=TypeError)
    for p in model.parameters():
        if p.device.type == "meta" or p.device != synthetic.x.device or p.dtype != synthetic.x.dtype:
            fail("dd_train", "model", f"a network on the device and dtype of synthetic.x ({synthetic.x.device}, "
                 f"{synthetic.x.dtype})", f"<a network with {p.dtype} parameters on {p.device}>")
    hyper = synthetic.info["hyperparameters"]
    ipc = synthetic.x.shape[0] // len(torch.unique(synthetic.y))
    return _apply_steps(model, synthetic.x, synthetic.y, ipc, hyper["inner_steps"], hyper["inner_epochs"],
                        synthetic.info["lrs"])
