"""Dataset Condensation with Distribution Matching (DM).

DM (Zhao & Bilen, WACV 2023) learns synthetic images whose mean embedding, under randomly
initialised and never trained networks, matches the mean embedding of the real images of
the same class. Every step draws a new network and freezes it; the images follow the
gradient of the summed class-wise :func:`~distillkit.distill.losses.distribution_matching_loss`.
The forward passes are chosen by device, for the same loss and image gradient either way:

* on CPU, the reference's loop: one forward pass per class for the real batch (under
  ``no_grad``, in chunks of 64 images) and one for the class's synthetic images, the loss
  summed over classes, one backward pass. Only one chunk's real activations are alive at a
  time: one forward over all classes' real batches at width 128 and 256 real images per
  class holds about 2.7 GB on MNIST, this loop about 0.4 GB in all, no more than the
  reference's, and it is faster on CPU (benchmarks/README_peers.md);
* on CUDA, all classes go through one forward pass for the real batches and one for the
  synthetic set (the embeddings of instance-normalised ConvNets do not depend on the
  other images of the batch, so the loss is the same), which fills the device. Networks
  with BatchNorm take this path on every device, as in the reference's ConvNetBN branch
  (their statistics are those of all classes).
"""

from __future__ import annotations

import time

import torch

from .._validation import check_bool, fail
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
from .losses import _distribution_matching_loss

__all__ = ["dm"]


@register("dm")
def dm(x, y, ipc, *, model_fn=None, steps: int = 20000, lr_img: float = 1.0, batch_real: int = 256,
       init: str = "real", dsa: bool = True, dsa_strategy: str = DEFAULT_STRATEGY, robust=None,
       per_class_step: bool = False, generator=None, callback=None, callback_every: int | None = None,
       progress: bool = False) -> SyntheticSet:
    r"""Distribution Matching: learn ``ipc`` images per class whose mean embedding matches the real one.

    Each step minimises :math:`\sum_c \lVert \frac{1}{|B_c|}\sum_{x \in B_c} h_\theta(a(x)) -
    \frac{1}{\mathrm{ipc}}\sum_j h_\theta(a(\tilde x_{c,j}))\rVert^2` over the synthetic
    images, for a new random frozen network :math:`h_\theta` (``net.embed``), a real batch
    :math:`B_c` of each class and a Siamese augmentation :math:`a` drawn per class.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w) or (n, d)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    ipc : int
        Synthetic images per class.
    model_fn : callable, optional
        ``model_fn(generator=seed)`` builds a network with ``embed``; default a ConvNet-3
        of width 128 sized for ``x`` (an MLP for vectors).
    steps : int
        Iterations, one new random network each (20000 in the paper).
    lr_img : float
        SGD learning rate of the images (momentum 0.5).
    batch_real : int
        Real images per class per step.
    init : {"real", "noise"}
        Start from random real examples of each class ("real") or from standard Gaussian noise
        ("noise").
    dsa : bool
        Siamese augmentation per class (one draw shared by the class's real and synthetic
        images; the reference default).
    dsa_strategy : str
        DSA families (``"color_crop_cutout_scale_rotate"`` for digits).
    robust : object, optional
        Hook for robust distillation: when given, the target mean embedding of class c is
        ``robust.feature_target(f_real_c, f_syn_c)``, a tensor of shape (feature_dim,),
        instead of ``f_real_c.mean(0)``. A ``feature_target`` that accepts ``generator=`` is
        given this call's generator (so a randomised target is reproducible under ``generator``).
    per_class_step : bool
        Memory mode of the reference README: one forward pass and one image step per class;
        each class's images are sliced and augmented after the previous classes' steps.
    generator : torch.Generator, int or None
        Source of every random draw: initialisation, networks, real batches, augmentation.
    callback : callable, optional
        ``callback(step, x_syn, info)`` every ``callback_every`` steps (and at 0 and the end).
    callback_every : int, optional
        Default ``steps // 10``.
    progress : bool
        Show a progress bar over the outer steps.

    Returns
    -------
    SyntheticSet

    Raises
    ------
    FloatingPointError
        If a step's loss or image gradient is not finite (for example inputs of magnitude
        1e30): the images are never stepped into NaN.

    References
    ----------
    B. Zhao, H. Bilen, "Dataset Condensation with Distribution Matching", WACV 2023.

    Examples
    --------
    >>> from distillkit.data import load_digits
    >>> x, y = load_digits()
    >>> s = dm(x, y, 1, steps=3, batch_real=16, dsa_strategy="color_crop_cutout_scale_rotate", generator=0)
    >>> tuple(s.x.shape), len(s.info["losses"])
    ((10, 1, 8, 8), 3)
    """
    func = "dm"
    x, y, ipc, classes, steps, lr_img, batch_real, init, dsa, parts, every, gen = _check_common(
        x, y, ipc, func, model_fn=model_fn, steps=steps, lr_img=lr_img, batch_real=batch_real, init=init, dsa=dsa,
        dsa_strategy=dsa_strategy, robust=robust, robust_method="feature_target", callback=callback,
        callback_every=callback_every, progress=progress, generator=generator)
    per_class_step = check_bool(per_class_step, "per_class_step", func)
    n_classes = int(max(classes)) + 1
    model_fn = model_fn or _default_model_fn(x, n_classes)
    _check_model(model_fn, x, n_classes, func, need_embed=True)
    hyper = dict(steps=steps, lr_img=lr_img, batch_real=batch_real, init=init, dsa=dsa,
                 dsa_strategy=dsa_strategy if dsa else None, per_class_step=per_class_step)

    from tqdm.auto import trange

    x_syn, y_syn = _init_synthetic(x, y, ipc, init, gen)
    x_syn.requires_grad_(True)
    sampler = ClassSampler(y)
    robust_gen = gen if robust is not None and _takes_generator(robust.feature_target) else None
    opt = torch.optim.SGD([x_syn], lr=lr_img, momentum=0.5)
    history, losses, times = [], [], []
    _snapshot(history, 0, x_syn, callback, {"loss": None})
    for step in trange(1, steps + 1, disable=not progress, desc=func, leave=False):
        start = time.perf_counter()
        net = _new_net(model_fn, gen, x)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        if per_class_step:  # each class is sliced and augmented after the previous classes' steps
            total = 0.0
            for xr, xs in _class_batches(x, x_syn, sampler, batch_real, ipc, parts, gen):
                loss = _class_loss(net, xr, xs, robust, robust_gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                _check_step(func, step, loss, x_syn, x)
                opt.step()
                total += float(loss.detach())
        else:
            pairs = list(_class_batches(x, x_syn, sampler, batch_real, ipc, parts, gen))
            real, syn = [p[0] for p in pairs], [p[1] for p in pairs]
            if _batched_forward(net, x.device):
                loss = _all_classes_loss(net, real, syn, robust, robust_gen)
            else:
                loss = _per_class_loss(net, real, syn, robust, robust_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _check_step(func, step, loss, x_syn, x)
            opt.step()
            total = float(loss.detach())
        losses.append(total)
        times.append(time.perf_counter() - start)
        if step % every == 0 or step == steps:
            _snapshot(history, step, x_syn, callback, {"loss": total})
    _check_final(func, x_syn)
    return _result(x_syn, y_syn, history, func, losses, times, hyper)


def _class_batches(x, x_syn, sampler, batch_real, ipc, parts, gen):
    """Yield per class a real batch and the synthetic slice, the pair Siamese-augmented (one draw per
    class). A generator: with ``per_class_step`` each class is sliced and augmented only after the
    previous classes' image steps (the random draws are the same, in the same order, either way)."""
    for k, c in enumerate(sampler.classes):
        xr = x[sampler.sample(c, batch_real, gen).to(x.device)]
        xs = x_syn[k * ipc:(k + 1) * ipc]
        if parts is not None:
            params = _sample(parts, 1, gen)
            xr, xs = _apply(xr, params), _apply(xs, params)
        yield xr, xs


def _target(f_real, f_syn, robust, robust_gen=None):
    if robust is None:
        return f_real.mean(0)
    if robust_gen is None:
        target = robust.feature_target(f_real, f_syn.detach())
    else:
        target = robust.feature_target(f_real, f_syn.detach(), generator=robust_gen)
    if not isinstance(target, torch.Tensor) or target.shape != f_real.shape[1:]:
        fail("dm", "robust", f"an object whose feature_target returns a tensor of shape {tuple(f_real.shape[1:])}",
             target)
    return target


def _has_batchnorm(net) -> bool:
    from torch import nn

    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


_CPU_REAL_CHUNK = 64  # real images per forward pass on CPU: 0.12 GB of activations at width 128 (0.28 GB for 256)


def _embed_real(net, xr):
    """``net.embed(xr)`` under ``no_grad``; on CPU, for networks without BatchNorm (whose embedding of an
    image does not depend on the rest of the batch), in chunks of ``_CPU_REAL_CHUNK`` images, which
    holds a quarter of the activations and is no slower."""
    with torch.no_grad():
        if xr.device.type != "cpu" or xr.shape[0] <= _CPU_REAL_CHUNK or _has_batchnorm(net):
            return net.embed(xr)
        return torch.cat([net.embed(part) for part in torch.split(xr, _CPU_REAL_CHUNK)])


def _class_loss(net, xr, xs, robust, robust_gen=None):
    f_real = _embed_real(net, xr)
    f_syn = net.embed(xs)
    if robust is None:
        return _distribution_matching_loss(f_real, f_syn)
    return ((_target(f_real, f_syn, robust, robust_gen) - f_syn.mean(0)) ** 2).sum()


def _batched_forward(net, device) -> bool:
    """Whether a step takes one forward pass over all classes' real batches and one over the synthetic
    set (on CUDA, where it fills the device; and for networks with BatchNorm, whose statistics are then
    those of all classes, as in the reference's ConvNetBN branch) or one per class (on CPU, the
    reference's loop for ConvNets: a fraction of the memory, and faster)."""
    return torch.device(device).type == "cuda" or _has_batchnorm(net)


def _per_class_loss(net, real, syn, robust, robust_gen=None):
    """Sum over classes of the DM loss with one forward pass per class for the real batch (under
    ``no_grad``: one class's activations alive at a time) and one for the class's synthetic images,
    as the reference; one backward pass over the sum. The random draws (batches, augmentation, then
    the robust targets in class order) are those of :func:`_all_classes_loss`."""
    total = 0.0
    for xr, xs in zip(real, syn):
        total = total + _class_loss(net, xr, xs, robust, robust_gen)
    return total


def _all_classes_loss(net, real, syn, robust, robust_gen=None):
    """Sum over classes of the DM loss with one forward pass for all real and one for all synthetic images."""
    with torch.no_grad():
        f_real = net.embed(torch.cat(real))  # (sum_c |B_c|, feature_dim)
    f_syn = net.embed(torch.cat(syn))  # (C * ipc, feature_dim)
    f_real_c = torch.split(f_real, [r.shape[0] for r in real])
    f_syn_c = torch.split(f_syn, [s.shape[0] for s in syn])
    if robust is None and len({r.shape[0] for r in real}) == 1:  # equal batches: one vectorised mean
        mu_real = f_real.view(len(real), real[0].shape[0], -1).mean(1)  # (C, feature_dim)
        mu_syn = f_syn.view(len(syn), syn[0].shape[0], -1).mean(1)
        return ((mu_real - mu_syn) ** 2).sum()
    targets = torch.stack([_target(fr, fs, robust, robust_gen) for fr, fs in zip(f_real_c, f_syn_c)])
    mu_syn = torch.stack([fs.mean(0) for fs in f_syn_c])
    return ((targets - mu_syn) ** 2).sum()
