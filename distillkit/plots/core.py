"""The book's three standard figures: an image grid, an accuracy-vs-budget curve and a 2-D
selection scatter. Each checks what it is given (tensors, options) and says what is wrong
in the library's one message form before drawing anything."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch

from .._validation import check_bool, check_float, check_int, check_tensor, check_xy, describe, fail

__all__ = ["MIN_FONT_PT", "STYLE", "use_style", "image_grid", "accuracy_curve", "selection_scatter"]

MIN_FONT_PT = 12  # the smallest font any book figure uses (see STYLE)

# Legible at the size the site shows a figure: every font is at least 12 pt at 100 dpi, so a
# figure shown at 0.75 of its natural width (the least the browser test allows) still reads
# at 9 pt; a figure at most 10.5 in wide (1,050 px) is shown at natural size or close to it.
STYLE = {
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "figure.titlesize": 13,
    "legend.frameon": False,
}
PALETTE = ["#1b6ca8", "#e07a1f", "#2a9d5c", "#c0392b", "#7d4fa0", "#8c6d31", "#d35c9f", "#5f6b73", "#b5a01a", "#16a0b5"]


def use_style() -> None:
    """Apply the book's matplotlib style globally (for notebooks)."""
    import matplotlib as mpl

    mpl.rcParams.update(STYLE)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=PALETTE)


def _check_plain(x, param: str, func: str, **kwargs) -> torch.Tensor:
    """check_tensor, with the meta device refused first (a meta tensor has nothing to draw)."""
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    x = check_tensor(x, param, func, **kwargs)
    if x.is_complex() or x.dtype == torch.bool:
        fail(func, param, "a real-valued tensor", x, error=TypeError)
    return x


def _check_common(ax, title, func: str) -> None:
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        fail(func, "ax", "a matplotlib Axes or None", ax, error=TypeError)
    if title is not None and not isinstance(title, str):
        fail(func, "title", "a str or None", title, error=TypeError)


def _check_real(value, param: str, func: str, expectation: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        fail(func, param, expectation, value, error=TypeError if not isinstance(value, numbers.Real) else ValueError)
    return float(value)


def _axes(ax, figsize=None):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(images: torch.Tensor, *, nrow: int | None = None, labels=None, ax=None, cmap="gray", title=None):
    """Show a batch of images ``(n, c, h, w)`` as one grid; returns the Axes.

    Each image is scaled to [0, 1] on its own (synthetic images leave [0, 1]).

    Parameters
    ----------
    images : Tensor of shape (n, c, h, w) with c in {1, 3}, or (n, h, w)
        At least one image, finite values.
    nrow : int, optional
        Images per row (default: about sqrt(n)).
    labels : sequence, optional
        One label per image, drawn in its corner.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    cmap : str or Colormap
        Colour map of one-channel images.
    title : str, optional
        Axes title.
    """
    func = "image_grid"
    images = _check_plain(images, "images", func, ndim=(3, 4), min_rows=1)
    if images.dim() == 4 and images.shape[1] not in (1, 3):
        fail(func, "images", "a tensor of shape (n, c, h, w) with 1 or 3 channels, or (n, h, w)", images)
    if nrow is not None:
        nrow = check_int(nrow, "nrow", func, low=1)
    if labels is not None:
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
            fail(func, "labels", "a sequence with one label per image, or None", labels, error=TypeError)
        if len(labels) != images.shape[0]:
            fail(func, "labels", f"a sequence with one label per image ({images.shape[0]})", f"<{len(labels)} labels>")
    _check_common(ax, title, func)
    import matplotlib.colors

    if not isinstance(cmap, (str, matplotlib.colors.Colormap)):
        fail(func, "cmap", "a colour map name (str) or a matplotlib Colormap", cmap, error=TypeError)
    x = images.detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (n, h, w) -> (n, 1, h, w)
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol_rows = math.ceil(n / nrow)
    lo = x.flatten(1).min(1).values.view(n, 1, 1, 1)
    hi = x.flatten(1).max(1).values.view(n, 1, 1, 1)
    x = (x - lo) / (hi - lo).clamp_min(1e-8)
    pad = 1
    canvas = torch.ones(c, ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, nrow)
        canvas[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    ax = _axes(ax, figsize=(0.6 * nrow + 1, 0.6 * ncol_rows + 0.5))
    ax.imshow(canvas[0] if c == 1 else canvas.permute(1, 2, 0), cmap=cmap if c == 1 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if labels is not None:
        for i, lab in enumerate(list(labels)[:n]):
            r, q = divmod(i, nrow)
            ax.text(pad + q * (w + pad) + 1, pad + r * (h + pad) + 1, str(lab), color="#e07a1f", fontsize=12, va="top")
    if title:
        ax.set_title(title)
    return ax


def accuracy_curve(budgets, results: dict, *, ax=None, xlabel="images per class", ylabel="test accuracy (%)",
                   full=None, logx=True, title=None):
    """Accuracy against budget, one line per method with a +-1 std band.

    Parameters
    ----------
    budgets : sequence of numbers
        The x values (images per class or budgets).
    results : dict mapping method name to a sequence of ``EvalResult`` (or ``(mean, std)``
        pairs in [0, 1]), one per budget.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    xlabel, ylabel : str
        Labels of the axes.
    full : float, optional
        Full-data accuracy in [0, 1], drawn as a dashed line.
    logx : bool
        A logarithmic x axis (then every budget must be positive).
    title : str, optional
        Axes title.
    """
    func = "accuracy_curve"
    if isinstance(budgets, torch.Tensor):
        budgets = _check_plain(budgets, "budgets", func, ndim=1).tolist()
    elif hasattr(budgets, "tolist") and hasattr(budgets, "ndim") and budgets.ndim == 1:  # a NumPy array
        budgets = budgets.tolist()
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, (list, tuple, range)) or not len(budgets):
        fail(func, "budgets", "a non-empty sequence of numbers", budgets, error=TypeError)
    budgets = [_check_real(b, "budgets", func, "a sequence of finite numbers") for b in budgets]
    logx = check_bool(logx, "logx", func)
    if logx and min(budgets) <= 0:
        fail(func, "budgets", "positive numbers when logx=True", f"<a budget of {min(budgets):g}>")
    if not isinstance(results, Mapping):
        fail(func, "results", "a dict mapping each method name to one result per budget", results, error=TypeError)
    expect_row = "an EvalResult or a (mean, std) pair of finite numbers, std >= 0, for each budget"
    for name, rows in results.items():
        if isinstance(rows, (str, bytes)) or not hasattr(rows, "__len__") or len(rows) != len(budgets):
            got = f"<{len(rows)} results for {name!r}>" if hasattr(rows, "__len__") else rows
            fail(func, "results", f"a dict whose values have one result per budget ({len(budgets)})", got)
        for r in rows:
            pair = (r.mean, r.std) if hasattr(r, "mean") and hasattr(r, "std") else r
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                fail(func, "results", expect_row, f"<{describe(r)} for {name!r}>")
            mean, std = (_check_real(v, "results", func, expect_row) for v in pair)
            if std < 0:
                fail(func, "results", expect_row, f"<a std of {std:g} for {name!r}>")
    if full is not None:
        full = check_float(full, "full", func)
    for param, text in (("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str):
            fail(func, param, "a str", text, error=TypeError)
    _check_common(ax, title, func)
    ax = _axes(ax)
    for name, rows in results.items():
        means = [100 * (r.mean if hasattr(r, "mean") else r[0]) for r in rows]
        stds = [100 * (r.std if hasattr(r, "std") else r[1]) for r in rows]
        line, = ax.plot(budgets, means, marker="o", label=name)
        ax.fill_between(budgets, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                        color=line.get_color(), alpha=0.15)
    if full is not None:
        ax.axhline(100 * full, color="black", ls="--", lw=1, label="full data")
    if logx:
        ax.set_xscale("log")
    # ticks at the budgets themselves, written as numbers (1, 10, 50), not as powers of ten
    from matplotlib.ticker import NullFormatter

    ticks = sorted(set(budgets))
    ax.set_xticks(ticks, [f"{b:g}" for b in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def selection_scatter(x: torch.Tensor, y: torch.Tensor, indices=None, *, ax=None, weights=None, title=None, s=8):
    """2-D data coloured by class with the selected points ringed (sized by weight).

    Parameters
    ----------
    x : Tensor of shape (n, 2)
        The points.
    y : Tensor of shape (n,), int64 labels >= 0
        Their labels (the class colours).
    indices : sequence of int or 1-D integer Tensor, optional
        Rows of ``x`` to ring, each in [0, n).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    weights : sequence of numbers or Tensor, optional
        One finite weight >= 0 per index (not all zero); the rings are sized by it.
    title : str, optional
        Axes title.
    s : float
        Marker size of the points (> 0).
    """
    func = "selection_scatter"
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        _check_plain(x, "x", func)
    x, y = check_xy(x, y, func, x_ndim=2)
    if x.shape[1] != 2:
        fail(func, "x", "a tensor of shape (n, 2)", x)
    n = x.shape[0]
    idx = None
    if indices is not None:
        idx = indices
        if isinstance(indices, (list, tuple)):
            if any(isinstance(i, bool) or not isinstance(i, numbers.Integral) for i in indices):
                fail(func, "indices", "a sequence of ints or a 1-D integer tensor", indices, error=TypeError)
            idx = torch.as_tensor(indices, dtype=torch.int64)
        idx = _check_plain(idx, "indices", func, ndim=1, floating=False)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            fail(func, "indices", f"indices in [0, {n})", f"<indices from {int(idx.min())} to {int(idx.max())}>")
    if weights is not None:
        if idx is None:
            fail(func, "weights", "None when no indices are given", weights)
        w = torch.as_tensor(weights, dtype=torch.float64) if isinstance(weights, (list, tuple)) else weights
        w = _check_plain(w, "weights", func, ndim=1)
        if w.shape[0] != idx.shape[0]:
            fail(func, "weights", f"a sequence with one weight per index ({idx.shape[0]})", w)
        if w.numel() and (float(w.min()) < 0 or float(w.max()) <= 0):
            fail(func, "weights", "non-negative weights, not all zero", f"<weights from {float(w.min()):g} to "
                 f"{float(w.max()):g}>")
    s = check_float(s, "s", func, low=0.0, low_open=True)
    _check_common(ax, title, func)
    x = x.detach().cpu()
    y = y.detach().cpu()
    ax = _axes(ax, figsize=(4.5, 4.0))
    for c in y.unique().tolist():
        m = y == c
        ax.scatter(x[m, 0], x[m, 1], s=s, alpha=0.35, color=PALETTE[c % len(PALETTE)], label=f"class {c}")
    if idx is not None:
        idx = idx.long().cpu()
        size = 60.0
        if weights is not None:
            w = w.detach().float().cpu()
            size = 40.0 + 160.0 * (w / w.max()).numpy()
        ax.scatter(x[idx, 0], x[idx, 1], s=size, facecolors="none", edgecolors="black", linewidths=1.3, label="selected")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize=12, markerscale=1.5)
    if title:
        ax.set_title(title)
    return ax
