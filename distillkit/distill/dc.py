"""Dataset Condensation with gradient matching (DC) and with Differentiable Siamese
Augmentation (DSA).

DC (Zhao, Mopuri & Bilen, ICLR 2021) learns synthetic images whose gradients, on networks
met along training, match the gradients of real images of the same class. DSA (Zhao &
Bilen, ICML 2021) augments the real and the synthetic class batch with one shared
differentiable transformation before matching. The loops follow the reference code: each
step draws a new randomly initialised network; ``outer_loop`` times, the class-wise
gradient distances are summed and the images take one SGD step, then the network is
trained for ``inner_loop`` epochs on the current synthetic set.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_float, check_int, check_option, fail
from ..types import SyntheticSet
from ._base import (
    ClassSampler,
    _check_common,
    _check_final,
    _check_model,
    _check_step,
    _default_model_fn,
    _init_synthetic,
    _new_net,
    _result,
    _snapshot,
    _takes_generator,
    register,
)
from .augment import DEFAULT_STRATEGY, _apply, _sample
from .losses import _METRICS, _batched_gradient_matching_distance, _gradient_matching_distance

__all__ = ["dc", "dsa", "default_loops"]

_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` for DC/DSA with ``ipc`` images per class.

    The published table (1 -> (1, 1), 10 -> (10, 50), 20 -> (20, 25), 30 -> (30, 20),
    40 -> (40, 15), 50 -> (50, 10)) is returned as is. Elsewhere: ``(ipc, 50)`` for
    2-9 images per class (the 10-row's inner loop), ``(ipc, round(500 / ipc))`` between 10
    and 50 (the rule behind the 10, 20 and 50 rows), and ``(50, 10)`` above 50, the
    authors' advice for large sets (DatasetCondensation issue #2).

    Parameters
    ----------
    ipc : int
        Synthetic images per class, at least 1.

    Examples
    --------
    >>> default_loops(10), default_loops(15), default_loops(100)
    ((10, 50), (15, 33), (50, 10))
    """
    ipc = check_int(ipc, "ipc", "default_loops", low=1)
    if ipc in _LOOPS:
        return _LOOPS[ipc]
    if ipc < 10:
        return ipc, 50
    if ipc < 50:
        return ipc, round(500 / ipc)
    return 50, 10


# ---------------------------------------------------------------- DC / DSA
@register("dc")
def dc(x, y, ipc, *, model_fn=None, steps: int = 1000, outer_loop: int | None = None, inner_loop: int | None = None,
       lr_img: float = 0.1, lr_net: float = 0.01, batch_real: int = 256, batch_train: int = 256, metric: str = "dc",
       init: str = "noise", dsa: bool = False, dsa_strategy: str = DEFAULT_STRATEGY, robust=None,
       per_class_step: bool = False, vectorize: bool | None = None, generator=None, callback=None,
       callback_every: int | None = None, progress: bool = False) -> SyntheticSet:
    """Dataset Condensation: learn ``ipc`` images per class by gradient matching.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w) or (n, d)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    ipc : int
        Synthetic images per class (at most the size of the smallest class).
    model_fn : callable, optional
        ``model_fn(generator=seed)`` builds a fresh network with ``embed``; default a
        ConvNet-3 of width 128 sized for ``x`` (an MLP for vectors).
    steps : int
        Outer iterations, each with a new random network (1000 in the paper).
    outer_loop, inner_loop : int, optional
        Matching steps per network and training epochs between them; default
        :func:`default_loops` ``(ipc)``.
    lr_img, lr_net : float
        SGD learning rates of the images (momentum 0.5) and of the network (no momentum).
    batch_real, batch_train : int
        Real images per class per matching step; minibatch of the inner training.
    metric : {"dc", "cos", "mse"}
        See :func:`~distillkit.distill.losses.gradient_matching_distance`.
    init : {"noise", "real"}
        Start from random real examples of each class ("real") or from standard Gaussian noise
        ("noise").
    dsa : bool
        Apply Siamese augmentation before matching and per-sample DSA in inner training.
    dsa_strategy : str
        DSA families (``"color_crop_cutout_scale_rotate"`` for digits).
    robust : object, optional
        Hook for robust distillation: when given, the real-side loss whose gradient is the
        target is ``robust.gradient_loss(net, x_real_c, y_real_c, x_syn_c, y_syn_c)`` (a
        scalar tensor), called per class after the Siamese augmentation of both batches.
        The default is the mean cross-entropy of ``net(x_real_c)``. A ``gradient_loss`` that
        accepts ``generator=`` is given this call's generator (reproducible randomised targets).
    per_class_step : bool
        Take one image step per class instead of one per outer loop (less memory).
    vectorize : bool, optional
        Compute all classes' gradients at once with ``torch.func.vmap``; default on CUDA
        only (on CPU the per-class loop is faster). Not with ``robust`` or BatchNorm.
    generator : torch.Generator, int or None
        Drives initialisation, networks, real batches and augmentation.
    callback : callable, optional
        ``callback(step, x_syn, info)`` every ``callback_every`` steps (and at 0 and the end).
    callback_every : int, optional
        Default ``steps // 10``.
    progress : bool
        Show a progress bar over the outer steps.

    Returns
    -------
    SyntheticSet
        ``history`` holds ``(step, x_syn)`` snapshots; ``info`` the ``losses``, the ``times``
        of the steps, their mean ``time_per_step`` and the ``hyperparameters``.

    Raises
    ------
    FloatingPointError
        If a matching step's loss or image gradient is not finite (for example inputs of
        magnitude 1e30): the images are never stepped into NaN.

    References
    ----------
    B. Zhao, K. R. Mopuri, H. Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021.

    Examples
    --------
    >>> from distillkit.data import load_digits
    >>> x, y = load_digits()
    >>> s = dc(x, y, 1, steps=2, batch_real=16, generator=0)
    >>> tuple(s.x.shape), s.y.tolist()
    ((10, 1, 8, 8), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    return _dc("dc", x, y, ipc, model_fn=model_fn, steps=steps, outer_loop=outer_loop, inner_loop=inner_loop,
               lr_img=lr_img, lr_net=lr_net, batch_real=batch_real, batch_train=batch_train, metric=metric,
               init=init, dsa=dsa, dsa_strategy=dsa_strategy, robust=robust, per_class_step=per_class_step,
               vectorize=vectorize, generator=generator, callback=callback, callback_every=callback_every,
               progress=progress)


@register("dsa")
def dsa(x, y, ipc, *, init: str = "real", dsa_strategy: str = DEFAULT_STRATEGY, **options) -> SyntheticSet:
    """DC with Differentiable Siamese Augmentation: :func:`dc` with ``dsa=True`` and real
    initialisation. Takes every option of :func:`dc`.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w)
        Real training images.
    y : Tensor of shape (n,), int64
        Their labels.
    ipc : int
        Synthetic images per class.
    init : {"real", "noise"}
        Initialisation, real images by default (as in the DSA paper).
    dsa_strategy : str
        The augmentation families, joined by "_".
    **options
        Every other option of :func:`dc`.

    References
    ----------
    B. Zhao, H. Bilen, "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021.

    Examples
    --------
    >>> from distillkit.data import load_digits
    >>> x, y = load_digits()
    >>> dsa(x, y, 1, steps=1, batch_real=8, dsa_strategy="color_crop_cutout_scale_rotate", generator=0).method
    'dsa'
    """
    if options.pop("dsa", True) is not True:
        fail("dsa", "dsa", "True (use dc for gradient matching without augmentation)", False)
    return _dc("dsa", x, y, ipc, init=init, dsa=True, dsa_strategy=dsa_strategy, **options)


def _dc(func, x, y, ipc, *, model_fn=None, steps=1000, outer_loop=None, inner_loop=None, lr_img=0.1, lr_net=0.01,
        batch_real=256, batch_train=256, metric="dc", init="noise", dsa=False, dsa_strategy=DEFAULT_STRATEGY,
        robust=None, per_class_step=False, vectorize=None, generator=None, callback=None, callback_every=None,
        progress=False):
    x, y, ipc, classes, steps, lr_img, batch_real, init, dsa, parts, every, gen = _check_common(
        x, y, ipc, func, model_fn=model_fn, steps=steps, lr_img=lr_img, batch_real=batch_real, init=init, dsa=dsa,
        dsa_strategy=dsa_strategy, robust=robust, robust_method="gradient_loss", callback=callback,
        callback_every=callback_every, progress=progress, generator=generator)
    outer_default, inner_default = default_loops(ipc)
    outer = outer_default if outer_loop is None else check_int(outer_loop, "outer_loop", func, low=1)
    inner = inner_default if inner_loop is None else check_int(inner_loop, "inner_loop", func, low=0)
    lr_net = check_float(lr_net, "lr_net", func, low=0.0, low_open=True)
    batch_train = check_int(batch_train, "batch_train", func, low=1)
    metric = check_option(metric, "metric", func, _METRICS)
    per_class_step = check_bool(per_class_step, "per_class_step", func)
    if vectorize is not None:
        vectorize = check_bool(vectorize, "vectorize", func)
    n_classes = int(max(classes)) + 1
    model_fn = model_fn or _default_model_fn(x, n_classes)
    _check_model(model_fn, x, n_classes, func)
    hyper = dict(steps=steps, outer_loop=outer, inner_loop=inner, lr_img=lr_img, lr_net=lr_net,
                 batch_real=batch_real, batch_train=batch_train, metric=metric, init=init, dsa=dsa,
                 dsa_strategy=dsa_strategy if dsa else None, per_class_step=per_class_step)

    from tqdm.auto import trange

    x_syn, y_syn = _init_synthetic(x, y, ipc, init, gen)
    x_syn.requires_grad_(True)
    sampler = ClassSampler(y)
    robust_gen = gen if robust is not None and _takes_generator(robust.gradient_loss) else None
    opt = torch.optim.SGD([x_syn], lr=lr_img, momentum=0.5)
    history, losses, times = [], [], []
    _snapshot(history, 0, x_syn, callback, {"loss": None})
    for step in trange(1, steps + 1, disable=not progress, desc=func, leave=False):
        start = time.perf_counter()
        net = _new_net(model_fn, gen, x)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        possible = robust is None and not per_class_step and not has_bn
        if vectorize and not possible:
            fail(func, "vectorize", "False or None with robust, per_class_step or BatchNorm networks", vectorize)
        use_vmap = possible and x.device.type == "cuda" if vectorize is None else vectorize
        net_opt = torch.optim.SGD(net.parameters(), lr=lr_net)
        step_loss = 0.0
        for ol in range(outer):
            if has_bn:
                _freeze_batchnorm(net, x, sampler, gen)
            match = _match_vmap if use_vmap else _match_loop
            step_loss += match(net, x, y, x_syn, y_syn, sampler, opt, metric=metric, batch_real=batch_real,
                               parts=parts, robust=robust, per_class_step=per_class_step, gen=gen,
                               guard=lambda loss, step=step: _check_step(func, step, loss, x_syn, x),
                               robust_gen=robust_gen)
            if ol == outer - 1:
                break
            _train_inner(net, net_opt, x_syn.detach(), y_syn, inner, batch_train, parts, gen)
        losses.append(step_loss / outer)
        times.append(time.perf_counter() - start)
        if step % every == 0 or step == steps:
            _snapshot(history, step, x_syn, callback, {"loss": losses[-1]})
    _check_final(func, x_syn)
    return _result(x_syn, y_syn, history, func, losses, times, hyper)


def _freeze_batchnorm(net, x, sampler, gen, per_class=16):
    """BatchNorm statistics from ``per_class`` real images per class, then frozen (reference)."""
    idx = torch.cat([sampler.sample(c, per_class, gen) for c in sampler.classes]).to(x.device)
    net.train()
    with torch.no_grad():
        net(x[idx])
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _class_batches(x, y, x_syn, y_syn, sampler, batch_real, parts, gen):
    """Yield ``(x_real_c, y_real_c, x_syn_c, y_syn_c)`` per class, Siamese-augmented if DSA is on."""
    ipc = x_syn.shape[0] // len(sampler.classes)
    for k, c in enumerate(sampler.classes):
        idx = sampler.sample(c, batch_real, gen).to(x.device)
        xr, yr = x[idx], y[idx]
        xs, ys = x_syn[k * ipc:(k + 1) * ipc], y_syn[k * ipc:(k + 1) * ipc]
        if parts is not None:  # one draw for both batches: identical transformation by construction
            params = _sample(parts, 1, gen)
            xr, xs = _apply(xr, params), _apply(xs, params)
        yield xr, yr, xs, ys


def _match_loop(net, x, y, x_syn, y_syn, sampler, opt, *, metric, batch_real, parts, robust, per_class_step, gen,
                guard, robust_gen=None):
    """One matching step, class by class (the reference's loop); returns the summed distance."""
    params = [p for p in net.parameters() if p.requires_grad]
    total, loss = 0.0, 0.0
    for xr, yr, xs, ys in _class_batches(x, y, x_syn, y_syn, sampler, batch_real, parts, gen):
        if robust is None:
            real_loss = F.cross_entropy(net(xr), yr)
        else:
            real_loss = (robust.gradient_loss(net, xr, yr, xs.detach(), ys) if robust_gen is None else
                         robust.gradient_loss(net, xr, yr, xs.detach(), ys, generator=robust_gen))
        g_real = [g.detach() for g in torch.autograd.grad(real_loss, params)]
        g_syn = torch.autograd.grad(F.cross_entropy(net(xs), ys), params, create_graph=True)
        dist = _gradient_matching_distance(g_syn, g_real, metric)
        if per_class_step:  # memory mode: one image step per class
            opt.zero_grad(set_to_none=True)
            dist.backward()
            guard(dist)
            opt.step()
            total += float(dist.detach())
        else:
            loss = loss + dist
    if not per_class_step:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        guard(loss)
        opt.step()
        total = float(loss.detach())
    return total


def _match_vmap(net, x, y, x_syn, y_syn, sampler, opt, *, metric, batch_real, parts, robust, per_class_step, gen,
                guard, robust_gen=None):
    """The same step with every class's gradients in one vmapped pass (same random draws)."""
    from torch.func import functional_call, grad, vmap

    batches = list(_class_batches(x, y, x_syn, y_syn, sampler, batch_real, parts, gen))
    size = max(b[0].shape[0] for b in batches)

    def pad(t, n):  # repeat the first rows to length n; their weight is 0
        return torch.cat([t, t[:1].expand(n - t.shape[0], *t.shape[1:])]) if t.shape[0] < n else t

    xr = torch.stack([pad(b[0], size) for b in batches])  # (C, size, ...)
    yr = torch.stack([pad(b[1], size) for b in batches])
    wr = torch.stack([(torch.arange(size, device=x.device) < b[0].shape[0]).to(x.dtype) for b in batches])
    xs, ys = torch.stack([b[2] for b in batches]), torch.stack([b[3] for b in batches])  # (C, ipc, ...)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    weights = {n: p.detach() for n, p in net.named_parameters()}

    def class_loss(w, xb, yb, wb):
        losses = F.cross_entropy(functional_call(net, w, (xb,)), yb, reduction="none")
        return (losses * wb).sum() / wb.sum()

    per_class_grad = vmap(grad(class_loss), in_dims=(None, 0, 0, 0))
    g_real = per_class_grad(weights, xr, yr, wr)
    g_syn = per_class_grad(weights, xs, ys, torch.ones(ys.shape, dtype=x.dtype, device=x.device))
    loss = _batched_gradient_matching_distance([g_syn[n] for n in names], [g_real[n].detach() for n in names],
                                                metric)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    guard(loss)
    opt.step()
    return float(loss.detach())


def _train_inner(net, net_opt, x_syn, y_syn, epochs, batch_train, parts, gen):
    """Train ``net`` for ``epochs`` epochs on the (detached) synthetic set, DSA per sample if on."""
    net.train()
    m = x_syn.shape[0]
    for _ in range(epochs):
        order = torch.randperm(m, generator=gen).to(x_syn.device)
        for s in range(0, m, batch_train):
            idx = order[s:s + batch_train]
            xb = x_syn[idx]
            if parts is not None:
                xb = _apply(xb, _sample(parts, xb.shape[0], gen))
            loss = F.cross_entropy(net(xb), y_syn[idx])
            net_opt.zero_grad(set_to_none=True)
            loss.backward()
            net_opt.step()

