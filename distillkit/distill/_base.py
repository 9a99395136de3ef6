"""Shared machinery of the distillation methods: the registry, the ``distill`` dispatcher,
initialisation of a synthetic set, per-class sampling of real batches, and the plumbing
every method's loop repeats (option checks, building networks, snapshots for callbacks).

Every method has the same head::

    method(x, y, ipc, *, model_fn=None, steps=..., init="real", generator=None,
           callback=None, progress=False, **options) -> SyntheticSet

``callback(step, x_syn, info)`` is called on the method's snapshot schedule so notebooks
and widgets can watch the synthetic images evolve; the library itself never prints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._validation import check_bool, check_float, check_generator, check_int, check_option, check_xy, fail
from ..types import SyntheticSet
from .augment import _parse_strategy

__all__ = ["METHODS", "register", "distill", "check_ipc", "init_synthetic", "ClassSampler"]

METHODS: dict[str, Callable[..., SyntheticSet]] = {}


def register(name: str):
    """Decorator adding a method to :data:`METHODS` under ``name``."""

    def wrap(fn):
        METHODS[name] = fn
        return fn

    return wrap


def distill(method: str, x: torch.Tensor, y: torch.Tensor, ipc: int, **options) -> SyntheticSet:
    """Run the registered distillation method ``method`` with ``ipc`` images per class."""
    expectation = "one of " + ", ".join(repr(m) for m in sorted(METHODS))
    if not isinstance(method, str):
        fail("distill", "method", expectation, method, error=TypeError)
    if method not in METHODS:
        fail("distill", "method", expectation, method)
    return METHODS[method](x, y, ipc, **options)


def check_ipc(x: torch.Tensor, y: torch.Tensor, ipc, func: str):
    """Validate ``(x, y, ipc)``: images (n, c, h, w) or vectors (n, d), and ``ipc`` no larger
    than the smallest class. Returns ``(x, y, ipc, classes)``."""
    x, y = check_xy(x, y, func, x_ndim=(2, 4))
    classes, counts = torch.unique(y.cpu(), return_counts=True)
    smallest = int(counts.min())
    ipc = check_int(ipc, "ipc", func, low=1)
    if ipc > smallest:
        c = int(classes[counts.argmin()])
        fail(func, "ipc", f"at most the size of the smallest class ({smallest} examples, class {c})", ipc)
    return x, y, ipc, classes.tolist()


def init_synthetic(x: torch.Tensor, y: torch.Tensor, ipc: int, *, init: str = "real", generator=None,
                   func: str = "init_synthetic") -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` synthetic examples per class: random real examples (``init="real"``) or
    standard Gaussian noise (``init="noise"``). Labels are sorted by class.

    Returns
    -------
    x_syn : Tensor of shape (n_classes * ipc, ...), on x's device, a fresh leaf tensor
    y_syn : Tensor of shape (n_classes * ipc,), int64
    """
    init = check_option(init, "init", func, ("real", "noise"))
    gen = check_generator(generator, func)
    y_cpu = y.cpu()
    classes = torch.unique(y_cpu).tolist()
    xs, ys = [], []
    for c in classes:
        members = (y_cpu == c).nonzero().squeeze(1)
        if init == "real":
            pick = members[torch.randperm(members.numel(), generator=gen)[:ipc]]
            xs.append(x[pick.to(x.device)].detach().clone())
        else:
            xs.append(torch.randn((ipc, *x.shape[1:]), generator=gen).to(x.device, x.dtype))
        ys.append(torch.full((ipc,), c, dtype=torch.int64))
    return torch.cat(xs).contiguous(), torch.cat(ys).to(y.device)


class ClassSampler:
    """Draw random real batches of one class, from a CPU generator (same draws on CPU and GPU)."""

    def __init__(self, y: torch.Tensor):
        y_cpu = y.cpu()
        self.classes = torch.unique(y_cpu).tolist()
        self.members = {c: (y_cpu == c).nonzero().squeeze(1) for c in self.classes}

    def sample(self, c: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``min(size, n_c)`` distinct random examples of class ``c`` (CPU int64)."""
        members = self.members[c]
        if size >= members.numel():
            return members[torch.randperm(members.numel(), generator=generator)]
        return members[torch.randperm(members.numel(), generator=generator)[:size]]


# ---------------------------------------------------------------- plumbing shared by the methods
def _check_callback(callback, callback_every, steps: int, func: str) -> int:
    """Validate ``callback``; returns the snapshot period (default ``steps // 10``, at least 1)."""
    if callback is not None and not callable(callback):
        fail(func, "callback", "a callable callback(step, x_syn, info) or None", callback, error=TypeError)
    return max(1, steps // 10) if callback_every is None else check_int(callback_every, "callback_every", func, low=1)


def _check_common(x, y, ipc, func, *, model_fn, steps, lr_img, batch_real, init, dsa, dsa_strategy,
                  robust, robust_method, callback, callback_every, progress, generator):
    """Validate the options DC, DSA and DM share; returns the validated values."""
    x, y, ipc, classes = check_ipc(x, y, ipc, func)
    steps = check_int(steps, "steps", func, low=1)
    lr_img = check_float(lr_img, "lr_img", func, low=0.0, low_open=True)
    batch_real = check_int(batch_real, "batch_real", func, low=1)
    init = check_option(init, "init", func, ("real", "noise"))
    dsa = check_bool(dsa, "dsa", func)
    parts = _parse_strategy(dsa_strategy, func, "dsa_strategy") if dsa else None
    if dsa and x.dim() != 4:
        fail(func, "dsa", "False for vector data (DSA augments images)", dsa)
    if model_fn is not None and not callable(model_fn):
        fail(func, "model_fn", "a callable model_fn(generator=seed) -> nn.Module, or None", model_fn, error=TypeError)
    if robust is not None and not callable(getattr(robust, robust_method, None)):
        fail(func, "robust", f"None or an object with a {robust_method}(...) method", robust, error=TypeError)
    every = _check_callback(callback, callback_every, steps, func)
    check_bool(progress, "progress", func)
    gen = check_generator(generator, func)
    return x, y, ipc, classes, steps, lr_img, batch_real, init, dsa, parts, every, gen


def _seed(gen: torch.Generator) -> int:
    """A fresh int seed drawn from ``gen`` (for ``model_fn(generator=seed)``)."""
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _default_model_fn(x: torch.Tensor, n_classes: int):
    """ConvNet-3 (width 128) sized for images, an MLP for vectors."""
    from ..models import MLP, ConvNet

    if x.dim() == 4:
        return lambda generator=None: ConvNet(x.shape[1], n_classes, im_size=x.shape[-1], generator=generator)
    return lambda generator=None: MLP(x.shape[1], n_classes, generator=generator)


def _new_net(model_fn, gen: torch.Generator, x: torch.Tensor) -> nn.Module:
    """A fresh network ``model_fn(generator=seed)``, seeded from ``gen``, on x's device and dtype."""
    return model_fn(generator=_seed(gen)).to(device=x.device, dtype=x.dtype)


def _check_model(model_fn, x: torch.Tensor, n_classes: int, func: str, *, need_embed: bool = False) -> None:
    """DC, DSA, DM: one forward pass in eval mode on one example of a throw-away network; it
    must accept x and output n_classes logits."""
    net = model_fn(generator=0)
    if not isinstance(net, nn.Module) or (need_embed and not callable(getattr(net, "embed", None))):
        what = "nn.Module networks with an embed(x) method" if need_embed else "nn.Module networks"
        fail(func, "model_fn", f"a factory of {what}", net, error=TypeError)
    try:
        net = net.to(device=x.device, dtype=x.dtype).eval()
        with torch.no_grad():
            out = net(x[:1])
    except Exception as exc:  # the model's own message says what did not fit
        fail(func, "x", "inputs the model from model_fn accepts", f"<inputs of shape {tuple(x.shape)} ({exc})>")
    if out.dim() != 2 or out.shape[1] < n_classes:
        fail(func, "model_fn", f"a network with at least {n_classes} outputs (one per class)",
             f"<outputs of shape {tuple(out.shape)}>")


def _build_model(model_fn, x: torch.Tensor, n_classes: int, seed: int, func: str) -> nn.Module:
    """DD, MTT and the experts: ``model_fn(generator=seed)`` on x's device and dtype, checked
    once on two inputs, and returned (it is the network the method uses)."""
    if not callable(model_fn):
        fail(func, "model_fn", "a callable model_fn(generator=...) returning an nn.Module", model_fn, error=TypeError)
    model = model_fn(generator=seed)
    if not isinstance(model, nn.Module):
        fail(func, "model_fn", "a callable returning an nn.Module", model, error=TypeError)
    model = model.to(device=x.device, dtype=x.dtype)
    try:
        with torch.no_grad():
            out = model(x[:2])
    except (RuntimeError, ValueError) as exc:
        fail(func, "x", "inputs the network built by model_fn accepts", f"<a tensor of shape {tuple(x.shape)} ({exc})>")
    if out.dim() != 2 or out.shape[1] < n_classes:
        fail(func, "model_fn", f"a network returning logits of shape (n, {n_classes})",
             f"<a network returning shape {tuple(out.shape)}>")
    return model


def _snapshot(history: list, step: int, x_syn: torch.Tensor, callback, info) -> None:
    """Record ``(step, x_syn)`` in ``history`` (a CPU copy) and call ``callback(step, x_syn, info)``."""
    history.append((step, x_syn.detach().cpu().clone()))
    if callback is not None:
        callback(step, x_syn.detach(), info)


def _result(x_syn, y_syn, history, method, losses, times, hyper) -> SyntheticSet:
    """DC, DSA, DM: the SyntheticSet with the losses and the time of every step."""
    info = {"losses": losses, "times": times, "time_per_step": sum(times) / len(times), "hyperparameters": hyper}
    return SyntheticSet(x=x_syn.detach(), y=y_syn, history=history, method=method, info=info)
