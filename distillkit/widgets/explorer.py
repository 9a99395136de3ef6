"""A slider linked in the browser to precomputed frames (works on the static site)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from .._validation import check_int, describe, fail

__all__ = ["figure_to_png", "frame_explorer", "live_explorer"]


def figure_to_png(fig, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it.

    Parameters
    ----------
    fig : matplotlib Figure
        The figure to render; it is closed afterwards.
    dpi : int
        Resolution, at least 1 (100, as the book style, so that its 12-pt fonts stay legible).
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        fail("figure_to_png", "fig", "a matplotlib Figure", fig, error=TypeError)
    dpi = check_int(dpi, "dpi", "figure_to_png", low=1)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def frame_explorer(frames: Sequence, labels: Sequence | None = None, *, description: str = "step",
                   value: int = 0):
    """A slider over precomputed frames, linked in the browser.

    Parameters
    ----------
    frames : sequence of PNG bytes, matplotlib figures or HTML strings
        One view per slider position.
    labels : sequence, optional
        What the slider shows for each position (defaults to 0, 1, ...). Shown in a
        read-out beside the slider, also linked in the browser.
    description : str
        The slider's label.
    value : int
        The position shown first.

    Returns
    -------
    ipywidgets.VBox
        Display it as the last expression of a cell. Tag that cell ``nbval-ignore-output``
        (widget model ids differ on every run).
    """
    import ipywidgets as w
    from matplotlib.figure import Figure

    func = "frame_explorer"
    expectation = "a non-empty list or tuple of PNG bytes, matplotlib figures or HTML strings"
    if not isinstance(frames, (list, tuple)):
        fail(func, "frames", expectation, f"<{describe(frames)}>", error=TypeError)
    if len(frames) == 0:
        fail(func, "frames", expectation, "<an empty sequence>")
    for i, frame in enumerate(frames):
        if not isinstance(frame, (bytes, bytearray, str, Figure)):
            fail(func, "frames", expectation, f"<{type(frame).__name__} at position {i}>", error=TypeError)
    if labels is not None and (isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence)):
        fail(func, "labels", "a sequence with one label per frame, or None", labels, error=TypeError)
    if not isinstance(description, str):
        fail(func, "description", "a str", description, error=TypeError)
    value = check_int(value, "value", func, low=0, high=len(frames) - 1)
    labels = list(range(len(frames))) if labels is None else list(labels)
    if len(labels) != len(frames):
        raise ValueError(
            f"The 'labels' parameter of frame_explorer must have one label per frame ({len(frames)}). "
            f"Got {len(labels)} labels instead."
        )
    children = []
    for frame in frames:
        if isinstance(frame, (bytes, bytearray)):
            children.append(w.Image(value=bytes(frame), format="png"))
        elif isinstance(frame, str):
            children.append(w.HTML(value=frame))
        else:  # a matplotlib figure
            children.append(w.Image(value=figure_to_png(frame), format="png"))
    stack = w.Stack(children=children, selected_index=value)
    slider = w.IntSlider(value=value, min=0, max=len(frames) - 1, description=description, readout=False,
                         continuous_update=True)
    names = w.Stack(children=[w.HTML(value=f"<b>{lab}</b>") for lab in labels], selected_index=value)
    w.jslink((slider, "value"), (stack, "selected_index"))
    w.jslink((slider, "value"), (names, "selected_index"))
    return w.VBox([w.HBox([slider, names]), stack])


def live_explorer(function: Callable, **sliders):
    """``ipywidgets.interactive`` with the given sliders: recomputes in a live kernel only.

    Parameters
    ----------
    function : callable
        Called with the sliders' values whenever one moves.
    **sliders
        Keyword arguments of ``ipywidgets.interactive``: sliders or value ranges.
    """
    import ipywidgets as w

    if not callable(function):
        fail("live_explorer", "function", "a callable", function, error=TypeError)

    return w.interactive(function, **sliders)
