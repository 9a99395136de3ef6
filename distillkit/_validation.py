"""Input checks shared by every public function of distillkit.

Every error has one form, naming the parameter, the function, the expectation and what
was given::

    The 'budget' parameter of herding must be an int in [1, 500]. Got 0 instead.

Public functions call these helpers at their boundary and then hand validated inputs to
private cores that assume them (the scikit-learn pattern, ``kmeans_plusplus`` ->
``_kmeans_plusplus``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

__all__ = [
    "fail",
    "check_int",
    "check_float",
    "check_bool",
    "check_option",
    "check_tensor",
    "check_xy",
    "check_budget",
    "check_generator",
    "check_labels",
    "check_model",
    "describe",
]


def describe(value) -> str:
    """A short human description of ``value`` for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, numbers.Number)) or value is None:
        return repr(value)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} of type {type(value).__name__}"


def fail(func: str, param: str, expectation: str, got, *, error=ValueError, note: str = ""):
    """Raise ``error`` in the library's one message form.

    ``got`` is described with :func:`describe` unless it is already a string that starts
    with ``"<"``, which is used verbatim (for computed facts such as ``"<3 NaN values>"``).
    """
    got_text = got[1:-1] if isinstance(got, str) and got.startswith("<") else describe(got)
    message = f"The {param!r} parameter of {func} must be {expectation}. Got {got_text} instead."
    if note:
        message += " " + note
    raise error(message)


def check_int(value, param: str, func: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``[low, high]``."""
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    expectation = f"an int in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        else:
            fail(func, param, expectation, value, error=TypeError)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        fail(func, param, expectation, value)
    return value


def check_float(
    value,
    param: str,
    func: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given (open or closed) interval."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    expectation = f"a finite real number in {left}{lo}, {hi}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(func, param, expectation, value, error=TypeError)
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        fail(func, param, expectation, value)
    return value


def check_bool(value, param: str, func: str) -> bool:
    if not isinstance(value, bool):
        fail(func, param, "a bool", value, error=TypeError)
    return value


def check_option(value, param: str, func: str, options: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``options`` (strings)."""
    options = list(options)
    expectation = "one of " + ", ".join(repr(o) for o in options)
    if not isinstance(value, str):
        fail(func, param, expectation, value, error=TypeError)
    if value not in options:
        fail(func, param, expectation, value)
    return value


_FINITE_CHUNK = 1 << 22


def check_tensor(
    x,
    param: str,
    func: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool | None = None,
    finite: bool = True,
    min_rows: int = 0,
    min_ndim: int = 0,
    half: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given number of dims, kind and finiteness.

    A tensor on the meta device (no data) is always refused. ``min_rows > 0`` also refuses a
    0-D tensor (it has no rows); ``min_ndim`` is the least number of dimensions; ``half=False``
    refuses float16 and bfloat16 (for computations that need float32 or float64).
    """
    if not isinstance(x, torch.Tensor):
        fail(func, param, "a torch.Tensor", x, error=TypeError)
    if x.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    if x.dim() < max(min_ndim, 1 if min_rows > 0 else 0):
        need = max(min_ndim, 1)
        fail(func, param, f"a tensor with at least {need} dimension{'s' if need > 1 else ''} (one row per example)",
             x)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            dims = " or ".join(str(a) for a in allowed)
            fail(func, param, f"a {dims}-dimensional tensor", x)
    if floating is True and not x.is_floating_point():
        fail(func, param, "a floating-point tensor", x, error=TypeError)
    if floating is False and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        fail(func, param, "an integer tensor", x, error=TypeError)
    if not half and x.dtype in (torch.float16, torch.bfloat16):
        fail(func, param, "a float32 or float64 tensor", x, error=TypeError)
    if x.dim() > 0 and x.shape[0] < min_rows:
        fail(func, param, f"a tensor with at least {min_rows} rows", x)
    if finite and x.is_floating_point():
        # A finite sum proves every element finite (NaN and infinities propagate) without an n-element mask;
        # only a non-finite sum (a bad value, or an overflow of large finite ones) triggers the exact count,
        # in chunks of 2**22 elements so its boolean mask stays a few MiB whatever the input's size.
        n_bad = 0
        if not bool(torch.isfinite(x.detach().sum())):  # a reduction: no copy, even of a non-contiguous view
            flat = x.detach().reshape(-1)
            n_bad = sum(int(part.numel() - torch.isfinite(part).sum()) for part in flat.split(_FINITE_CHUNK))
        if n_bad:
            fail(func, param, "finite (no NaN or infinite values)", f"<a tensor with {n_bad} NaN or infinite values>")
    return x


def check_xy(x, y, func: str, *, x_ndim=None, y_required: bool = True, floating: bool = True, min_ndim: int = 0,
             half: bool = True):
    """Check a feature tensor and its int64 labels: same length, finite, 1-D labels >= 0."""
    x = check_tensor(x, "x", func, ndim=x_ndim, floating=floating, min_rows=1, min_ndim=min_ndim, half=half)
    if y is None:
        if y_required:
            fail(func, "y", "a 1-D int64 tensor of labels", y, error=TypeError)
        return x, None
    y = check_tensor(y, "y", func, ndim=1, floating=False)
    if y.dtype != torch.int64:
        fail(func, "y", "an int64 tensor of class labels", y, error=TypeError)
    if y.shape[0] != x.shape[0]:
        fail(func, "y", f"a tensor with one label per row of x ({x.shape[0]} rows)", y)
    if y.numel() and int(y.min()) < 0:
        fail(func, "y", "non-negative class labels", f"<a minimum label of {int(y.min())}>")
    return x, y


def check_budget(budget, n: int, func: str, param: str = "budget") -> int:
    """A budget is an int in [1, n]."""
    return check_int(budget, param, func, low=1, high=n)


def check_generator(generator, func: str, param: str = "generator") -> torch.Generator:
    """Turn ``None``, an int seed or a CPU ``torch.Generator`` into a CPU generator.

    ``None`` means a fresh generator seeded from the operating system's entropy, so that
    results are random but the global RNG is never touched. Index sampling always draws
    from a CPU generator, so one seed gives the same selection on CPU and GPU.
    """
    if generator is None:
        g = torch.Generator()
        g.seed()
        return g
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            fail(func, param, "a CPU torch.Generator, an int seed or None", f"<a generator on {generator.device}>")
        return generator
    if isinstance(generator, bool) or not isinstance(generator, numbers.Integral):
        fail(func, param, "a torch.Generator, an int seed or None", generator, error=TypeError)
    if generator < 0:
        fail(func, param, "a non-negative int seed", generator)
    g = torch.Generator()
    g.manual_seed(int(generator))
    return g


def check_labels(y: torch.Tensor, n_classes: int, func: str, why: str, param: str = "y") -> torch.Tensor:
    """Labels ``y`` (already checked by :func:`check_xy`) must lie in [0, n_classes - 1]; ``why``
    says where the number of classes comes from."""
    if y.numel() and int(y.max()) >= n_classes:
        fail(func, param, f"labels in [0, {n_classes - 1}] ({why})", f"<a maximum label of {int(y.max())}>")
    return y


def check_model(model, func: str, param: str = "model", *, like: torch.Tensor | None = None):
    """``model`` must be an ``nn.Module``; with ``like``, its floating-point parameters must have
    the dtype and device of ``like`` (the data it will read)."""
    from torch import nn

    if not isinstance(model, nn.Module):
        fail(func, param, "an nn.Module", model, error=TypeError)
    if like is not None:
        for p in model.parameters():
            if p.device.type == "meta":
                fail(func, param, "a model whose parameters hold data (not on the meta device)", "<a meta model>")
            if p.device != like.device:
                fail(func, param, f"a model on the device of x ({like.device})", f"<a model on {p.device}>")
            if p.is_floating_point() and p.dtype != like.dtype:
                fail(func, param, f"a model whose parameters have the dtype of x ({like.dtype})",
                     f"<a model with {p.dtype} parameters>", note="Cast one to the other, e.g. model.to(x.dtype).")
    return model
