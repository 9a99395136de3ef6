"""Matching Training Trajectories (MTT): synthetic images on which a few SGD steps move a
network as far as several epochs of real training did.

Cazenavette, Wang, Torralba, Efros & Zhu, "Dataset Distillation by Matching Training
Trajectories", CVPR 2022. First, *experts* are trained on the real data and their
parameters saved after every epoch
(:func:`~distillkit.distill.experts.train_expert_trajectories`). Then each
distillation step picks an expert and a start epoch t, runs N differentiable SGD steps on
the synthetic set from the expert's parameters ``theta*_t`` with a learnable step size, and
minimises::

    || theta_N - theta*_{t+M} ||^2 / || theta*_t - theta*_{t+M} ||^2

(:func:`~distillkit.distill.losses.trajectory_matching_loss`), back-propagating through
all N steps to the pixels and the step size.

Where we differ from the reference (GeorgeCazenavette/mtt-distillation), on purpose: the
step size is ``exp`` of a raw parameter, so it cannot turn negative (reference issue #16):
the reference's step ``-lr_lr * v`` (v the momentum-0.5 average of dL/dlr, so ``lr_lr``
keeps its units) is applied multiplicatively, ``lr <- lr * exp(-lr_lr * v / lr)``, and
limited to a factor of 2 per iteration; steps with a non-finite loss or gradient are
skipped and recorded, never written into the images (reference issues #6, #42); expert
buffers carry a manifest and a SHA-256 checksum instead of path conventions; and the
unroll can be checkpointed (``checkpoint=True``) to trade time for memory.
"""

from __future__ import annotations

import os
import time

import torch

from .._validation import check_bool, check_float, check_generator, check_int, check_option, check_tensor, fail
from ..types import SyntheticSet
from ._base import (
    _build_model,
    _check_callback,
    _check_final,
    _check_label_range,
    _default_model_fn,
    _init_synthetic,
    _snapshot,
    check_ipc,
    register,
)
from .experts import ExpertBuffer, expert_buffer_size, load_expert_trajectories, train_expert_trajectories  # noqa: F401  (importable from here, as before)
from .losses import trajectory_matching_loss
from .unroll import unroll_sgd

__all__ = ["mtt"]

_LOG2 = 0.6931471805599453  # the step size changes by at most a factor 2 per iteration


@register("mtt")
def mtt(x: torch.Tensor, y: torch.Tensor, ipc: int, *, experts, model_fn=None, steps: int = 5000, syn_steps: int = 20,
        expert_epochs: int = 2, max_start_epoch: int | None = None, lr_img: float = 1000.0, lr_lr: float = 1e-5,
        lr_init: float = 0.01, batch_syn: int | None = None, augment=None, checkpoint: bool = False,
        init: str = "real", generator=None, callback=None, callback_every: int | None = None,
        progress: bool = False) -> SyntheticSet:
    """Matching Training Trajectories.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w) or (n, d)
        Real training inputs (the synthetic set is initialised from them).
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    ipc : int
        Synthetic images per class.
    experts : ExpertBuffer, str or os.PathLike
        From :func:`~distillkit.distill.experts.train_expert_trajectories` (a path is loaded and verified).
    model_fn : callable, optional
        The experts' architecture (default: ConvNet-3, width 128).
    steps : int
        Distillation iterations (reference: 5000).
    syn_steps : int
        Student SGD steps N per iteration.
    expert_epochs : int
        Expert epochs M the student must cover.
    max_start_epoch : int, optional
        The start epoch is drawn uniformly from {0, ..., max_start_epoch - 1}, as in the
        reference; default (None) ``epochs - expert_epochs + 1``, every possible start.
    lr_img : float
        SGD (momentum 0.5) learning rate for the pixels.
    lr_lr : float
        Learning rate of the step size, in the reference's units (SGD, momentum 0.5); the
        step is applied multiplicatively and limited to a factor 2 per iteration, so the
        step size stays positive.
    lr_init : float
        Initial student step size (the reference initialises it from ``lr_teacher``).
    batch_syn : int, optional
        Synthetic minibatch per student step; None uses the whole set. As the reference
        (GeorgeCazenavette/mtt-distillation, ``distill.py``: ``torch.split`` of a
        ``torch.randperm`` of the synthetic set, chunks taken with ``pop()``), the minibatches
        are the chunks of a random permutation taken from the last one, so when ``batch_syn``
        does not divide the set the short last chunk is used first (nothing is dropped); a
        new permutation is drawn at every iteration and whenever the chunks run out.
    augment : callable ``(x_batch, generator) -> x_batch``, optional
        Differentiable augmentation at every student step (the reference uses DSA).
    checkpoint : bool
        Gradient checkpointing over the student steps.
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
        ``lr`` is the learned step size; ``info`` holds ``losses``, ``lrs``, ``times`` (per
        step), ``time_per_step``, ``skipped`` and ``hyperparameters``.

    Raises
    ------
    FloatingPointError
        If every step had a non-finite loss or gradient (all were skipped), or the images
        became non-finite: never unchanged or non-finite images as a result.

    References
    ----------
    G. Cazenavette, T. Wang, A. Torralba, A. A. Efros, J.-Y. Zhu, "Dataset Distillation by
    Matching Training Trajectories", CVPR 2022.

    Examples
    --------
    >>> from distillkit.models import MLP
    >>> x, y = torch.randn(40, 5), torch.arange(40) % 2
    >>> fn = lambda generator: MLP(5, 2, hidden=(4,), generator=generator)
    >>> buf = train_expert_trajectories(x, y, model_fn=fn, n_experts=1, epochs=3, generator=0)
    >>> s = mtt(x, y, 2, experts=buf, model_fn=fn, steps=3, syn_steps=2, lr_img=1.0, generator=0)
    >>> tuple(s.x.shape), s.lr > 0
    ((4, 5), True)
    """
    func = "mtt"
    x, y, ipc, classes = check_ipc(x, y, ipc, func)
    if isinstance(experts, (str, os.PathLike)):
        experts = load_expert_trajectories(experts)
    if not isinstance(experts, ExpertBuffer):
        fail(func, "experts", "an ExpertBuffer or the path of a saved one", experts, error=TypeError)
    if isinstance(experts.trajectories, torch.Tensor) and experts.trajectories.device.type == "meta":
        fail(func, "experts", "an ExpertBuffer whose trajectories hold data", "<trajectories on the meta device>")
    check_tensor(experts.trajectories, "experts", func, ndim=3, floating=True)  # finite: NaN experts teach nothing
    steps = check_int(steps, "steps", func, low=1)
    syn_steps = check_int(syn_steps, "syn_steps", func, low=1)
    expert_epochs = check_int(expert_epochs, "expert_epochs", func, low=1, high=experts.epochs)
    top = experts.epochs - expert_epochs + 1
    if max_start_epoch is None:
        max_start_epoch = top
    max_start_epoch = check_int(max_start_epoch, "max_start_epoch", func, low=1, high=top)
    lr_img = check_float(lr_img, "lr_img", func, low=0.0, low_open=True)
    lr_lr = check_float(lr_lr, "lr_lr", func, low=0.0)
    lr_init = check_float(lr_init, "lr_init", func, low=0.0, low_open=True)
    m = ipc * len(classes)
    batch_syn = m if batch_syn is None else check_int(batch_syn, "batch_syn", func, low=1, high=m)
    if augment is not None and not callable(augment):
        fail(func, "augment", "a callable (x_batch, generator) -> x_batch or None", augment, error=TypeError)
    checkpoint = check_bool(checkpoint, "checkpoint", func)
    init = check_option(init, "init", func, ("real", "noise"))
    progress = check_bool(progress, "progress", func)
    gen = check_generator(generator, func)
    callback_every = _check_callback(callback, callback_every, steps, func)
    n_classes = int(max(classes)) + 1
    if model_fn is None:
        _check_label_range(y, func)
    model_fn = _default_model_fn(x, n_classes) if model_fn is None else model_fn
    model = _build_model(model_fn, x, n_classes, 0, func)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != experts.n_params:
        fail(func, "experts", f"trajectories of the network built by model_fn ({n_params} parameters)",
             f"<trajectories of {experts.n_params} parameters>")

    x_syn, y_syn = _init_synthetic(x, y, ipc, init, gen)
    x_syn.requires_grad_(True)
    log_lr = torch.tensor(lr_init, dtype=x.dtype, device=x.device).log()
    velocity = torch.zeros((), dtype=x.dtype, device=x.device)  # momentum of dL/dlr, in lr units
    opt_img = torch.optim.SGD([x_syn], lr=lr_img, momentum=0.5)
    hyper = dict(steps=steps, syn_steps=syn_steps, expert_epochs=expert_epochs, max_start_epoch=max_start_epoch,
                 lr_img=lr_img, lr_lr=lr_lr, lr_init=lr_init, batch_syn=batch_syn, checkpoint=checkpoint, init=init,
                 augment=None if augment is None else getattr(augment, "__name__", repr(augment)))
    info = {"losses": [], "lrs": [], "times": [], "skipped": [], "hyperparameters": hyper}
    history = []
    _snapshot(history, 0, x_syn, callback, info)

    from tqdm.auto import trange

    for step in trange(1, steps + 1, disable=not progress, desc="mtt", leave=False):
        tic = time.perf_counter()
        e = int(torch.randint(0, experts.n_experts, (1,), generator=gen))
        t = int(torch.randint(0, max_start_epoch, (1,), generator=gen))
        theta_start = experts.trajectories[e, t].to(x.device, x.dtype)
        theta_target = experts.trajectories[e, t + expert_epochs].to(x.device, x.dtype)
        batches, chunks = [], []
        for _ in range(syn_steps):  # the reference's minibatches: chunks of a permutation, taken from the end
            if not chunks:
                chunks = list(torch.randperm(m, generator=gen).split(batch_syn))
            idx = chunks.pop().to(x.device)
            xb = x_syn[idx] if augment is None else augment(x_syn[idx], gen)
            batches.append((xb, y_syn[idx]))
        lr = log_lr.detach().exp().requires_grad_(True)
        theta = unroll_sgd(model, theta_start, batches, lr.expand(syn_steps), checkpoint=checkpoint)
        loss = trajectory_matching_loss(theta, theta_start, theta_target)
        g_img, g_lr = torch.autograd.grad(loss, [x_syn, lr])
        if not (torch.isfinite(loss) and bool(torch.isfinite(g_img).all()) and torch.isfinite(g_lr)):
            info["skipped"].append(step)  # NaN guard: no update, the images stay finite
        else:
            x_syn.grad = g_img
            opt_img.step()
            with torch.no_grad():  # the reference's step on lr, applied multiplicatively: lr stays > 0
                velocity = 0.5 * velocity + g_lr
                log_lr += (-lr_lr * velocity / lr).clamp(-_LOG2, _LOG2)
        info["losses"].append(float(loss.detach()))
        info["lrs"].append(float(log_lr.exp()))
        info["times"].append(time.perf_counter() - tic)
        if step % callback_every == 0 or step == steps:
            _snapshot(history, step, x_syn, callback, info)
    _check_final(func, x_syn, info["skipped"], steps)
    info["time_per_step"] = sum(info["times"]) / len(info["times"])
    return SyntheticSet(x_syn.detach(), y_syn, lr=float(log_lr.exp()), history=history, method="mtt", info=info)
