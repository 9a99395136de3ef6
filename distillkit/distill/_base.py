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

import inspect
from collections.abc import Callable

import torch
from torch import nn

from .._validation import (
    check_bool,
    check_float,
    check_generator,
    check_int,
    check_option,
    check_tensor,
    check_xy,
    fail,
)
from ..types import SyntheticSet
from .augment import _parse_strategy

__all__ = ["METHODS", "register", "distill", "check_ipc", "init_synthetic", "ClassSampler"]

METHODS: dict[str, Callable[..., SyntheticSet]] = {}


def register(name: str):
    """Decorator adding a method to :data:`METHODS` under ``name``.

    Parameters
    ----------
    name : str
        The name :func:`distill` will know the method by.
    """

    def wrap(fn):
        METHODS[name] = fn
        return fn

    return wrap


def distill(method: str, x: torch.Tensor, y: torch.Tensor, ipc: int, **options) -> SyntheticSet:
    """Run the registered distillation method ``method`` with ``ipc`` images per class.

    Parameters
    ----------
    method : str
        A name registered in :data:`METHODS` ("dd", "dc", "dsa", "dm", "mtt", "kip").
    x : Tensor of shape (n, ...)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Their labels.
    ipc : int
        Synthetic examples per class.
    **options
        Keyword options of the method.
    """
    expectation = "one of " + ", ".join(repr(m) for m in sorted(METHODS))
    if not isinstance(method, str):
        fail("distill", "method", expectation, method, error=TypeError)
    if method not in METHODS:
        fail("distill", "method", expectation, method)
    return METHODS[method](x, y, ipc, **options)


MAX_CLASSES = 1 << 16  # the default networks have one output per label up to the largest: refuse absurd labels


def _check_data(x, y, func: str, *, x_ndim=(2, 4)):
    """``x`` float32/float64 with data (not meta), ``y`` int64 labels, as :func:`check_xy` checks them.

    float16 and bfloat16 are refused: the image optimisers (Adam's epsilon, SGD's small steps)
    underflow in half precision and the images become infinite or NaN."""
    for name, t in (("x", x), ("y", y)):
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            fail(func, name, "a tensor with data (not on the meta device)",
                 f"<a meta tensor of shape {tuple(t.shape)}>")
    if x_ndim is None and isinstance(x, torch.Tensor) and x.dim() < 2:
        fail(func, "x", "a tensor of shape (n, ...) with at least 2 dimensions", x)
    x, y = check_xy(x, y, func, x_ndim=x_ndim)
    if x.dtype not in (torch.float32, torch.float64):
        fail(func, "x", "a float32 or float64 tensor", x, error=TypeError)
    return x, y


def _check_label_range(y: torch.Tensor, func: str, why: str = "the default network has one output per label "
                       "up to the largest") -> None:
    if int(y.max()) >= MAX_CLASSES:
        fail(func, "y", f"labels in [0, {MAX_CLASSES - 1}] ({why})", f"<a maximum label of {int(y.max())}>")


def check_ipc(x: torch.Tensor, y: torch.Tensor, ipc, func: str):
    """Validate ``(x, y, ipc)``: images (n, c, h, w) or vectors (n, d) in float32 or float64, and
    ``ipc`` no larger than the smallest class. Returns ``(x, y, ipc, classes)``.

    Parameters
    ----------
    x : Tensor of shape (n, c, h, w) or (n, d)
        Real inputs.
    y : Tensor of shape (n,), int64
        Their labels.
    ipc : int
        Synthetic examples per class.
    func : str
        The public function named in error messages.
    """
    x, y = _check_data(x, y, func)
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

    ``ipc`` must not exceed the size of the smallest class (else every class could not get
    ``ipc`` distinct real images).

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Real inputs.
    y : Tensor of shape (n,), int64
        Their labels.
    ipc : int
        Synthetic examples per class, at most the size of the smallest class.
    init : {"real", "noise"}
        Random real examples of each class, or standard Gaussian noise.
    generator : torch.Generator, int or None
        Source of the draw.
    func : str
        The public function named in error messages.

    Returns
    -------
    x_syn : Tensor of shape (n_classes * ipc, ...), on x's device, a fresh leaf tensor
    y_syn : Tensor of shape (n_classes * ipc,), int64

    Examples
    --------
    >>> x_syn, y_syn = init_synthetic(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]), 2, generator=0)
    >>> tuple(x_syn.shape), y_syn.tolist()
    ((4, 3), [0, 0, 1, 1])
    """
    if not isinstance(func, str):
        fail("init_synthetic", "func", "a str (the public function named in error messages)", func, error=TypeError)
    x, y, ipc, _ = check_ipc(x, y, ipc, func)
    init = check_option(init, "init", func, ("real", "noise"))
    gen = check_generator(generator, func)
    return _init_synthetic(x, y, ipc, init, gen)


def _init_synthetic(x, y, ipc: int, init: str, gen: torch.Generator):
    """:func:`init_synthetic` on validated inputs."""
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
    """Draw random real batches of one class, from a CPU generator (same draws on CPU and GPU).

    Parameters
    ----------
    y : Tensor of shape (n,), int64
        Labels of the real data to draw from.

    Examples
    --------
    >>> sampler = ClassSampler(torch.tensor([0, 1, 0, 1, 0]))
    >>> sorted(sampler.sample(0, 2, torch.Generator().manual_seed(0)).tolist()) in ([0, 2], [0, 4], [2, 4])
    True
    """

    def __init__(self, y: torch.Tensor):
        func = "ClassSampler"
        if isinstance(y, torch.Tensor) and y.device.type == "meta":
            fail(func, "y", "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(y.shape)}>")
        y = check_tensor(y, "y", func, ndim=1, floating=False, min_rows=1)
        if y.dtype != torch.int64:
            fail(func, "y", "an int64 tensor of class labels", y, error=TypeError)
        y_cpu = y.cpu()
        self.classes = torch.unique(y_cpu).tolist()
        self.members = {c: (y_cpu == c).nonzero().squeeze(1) for c in self.classes}

    def sample(self, c: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``min(size, n_c)`` distinct random examples of class ``c`` (CPU int64)."""
        func = "ClassSampler.sample"
        members = self.members.get(c) if isinstance(c, int) and not isinstance(c, bool) else None
        if members is None:
            fail(func, "c", f"one of the classes {self.classes}", c,
                 error=ValueError if isinstance(c, int) else TypeError)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            check_int(size, "size", func, low=1)
        if not isinstance(generator, torch.Generator):
            generator = check_generator(generator, func)
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
    if model_fn is None:
        _check_label_range(y, func)
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


def _takes_generator(method) -> bool:
    """Whether a robust hook accepts ``generator=`` (then the method passes its own generator, so
    a randomised target, e.g. k-means subgroups, is reproducible under the method's seed)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "generator" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _check_step(func: str, step: int, loss: torch.Tensor, x_syn: torch.Tensor, x: torch.Tensor) -> None:
    """DC, DSA, DM: refuse an image step whose loss or gradient is not finite (it would turn the
    synthetic images into NaN) with an error naming the function, the step and the cause."""
    grad = x_syn.grad
    if bool(torch.isfinite(loss.detach())) and (grad is None or bool(torch.isfinite(grad).all())):
        return
    what = f"loss ({float(loss.detach())})" if not bool(torch.isfinite(loss.detach())) else "gradient of the images"
    raise FloatingPointError(
        f"{func} stopped at step {step}: the matching {what} is not finite, so the image step would make the "
        f"synthetic images NaN. The real inputs x reach a magnitude of {float(x.detach().abs().max()):.3g}: "
        "standardise them, or lower lr_img.")


def _check_final(func: str, x_syn: torch.Tensor, skipped: list | None = None, steps: int | None = None) -> None:
    """Never return non-finite images, nor unchanged images after every step was skipped."""
    if skipped is not None and steps is not None and len(skipped) == steps:
        raise FloatingPointError(
            f"{func}: every one of its {steps} steps had a non-finite loss or gradient and was skipped, so the "
            "synthetic images are their initialisation. Check the inputs' scale and the learning rates.")
    if not bool(torch.isfinite(x_syn.detach()).all()):
        raise FloatingPointError(
            f"{func}: the synthetic images became non-finite (NaN or infinite) during the optimisation. "
            "Lower the learning rates or standardise the inputs x.")


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
