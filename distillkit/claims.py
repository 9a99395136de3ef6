"""Checked claims: the conclusions a chapter draws from numbers that come out of training.

Training on a small set turns last-bit floating-point differences (another CPU, another
kernel, another thread count) into points of accuracy, so the digits a chapter prints are
the observation of one machine. What the chapter *concludes* from them should hold on every
machine. :func:`claim` states such a conclusion with an explicit margin in units of the
measured spread and prints one line that does not depend on the digits::

    >>> from distillkit.claims import claim
    >>> claim("herding beats random at 1 image per class", [0.64, 0.66, 0.65], ">", [0.43, 0.47, 0.40],
    ...       margin="2 std")
    ✓ herding beats random at 1 image per class (by more than 2 std)

The chapter shows the measured numbers in a cell whose output the notebook tests do not
compare (tag ``nbval-ignore-output``) and states its claims in the next cell, whose
output they do compare: a claim that stops holding prints ``✗`` and fails the test.

Margins
-------
``margin=None``
    the plain comparison of the means.
``margin=0.05`` (a number)
    an absolute margin in the units of the measurements (0.05 = 5 points of accuracy).
``margin="2 std"``
    ``k`` times the spread of the difference, ``sqrt(s_a**2 + s_b**2)``, where ``s`` is the
    sample standard deviation over seeds (``ddof=1``) and a constant has no spread. It needs
    at least two measurements on one side.

A side is an :class:`~distillkit.evaluate.EvalResult` (its per-seed accuracies), a sequence
of numbers (one per seed or per run) or a single number (a constant such as chance level,
a majority-class rate or a published mean).

Set ``DISTILLKIT_CLAIMS=raise`` to make a failing claim raise :class:`ClaimFailed` (the
command that stores a chapter's outputs does, so a chapter is never stored with a ``✗``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._validation import fail

__all__ = ["Claim", "ClaimFailed", "claim", "spread", "values_of"]

_OPS = (">", "<", ">=", "<=", "~")
_MARGIN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*std\s*$")


class ClaimFailed(AssertionError):
    """A stated conclusion did not hold on this run (raised only with DISTILLKIT_CLAIMS=raise)."""


@dataclass(frozen=True)
class Claim:
    """The outcome of one claim: what was stated, whether it held, and the numbers behind it.

    Parameters
    ----------
    statement : str
        The claim as written in the chapter.
    holds : bool
        Whether it held on this run.
    difference : float
        The measured difference of the means (or their distance, for ``"~"``).
    threshold : float
        What the difference had to beat: the margin, in units of the data.
    margin_text : str
        The margin as printed (for example "2 std"), or "" for no margin.
    """

    statement: str
    holds: bool
    difference: float
    threshold: float
    margin_text: str

    def _ipython_display_(self):
        """Shown as nothing: :func:`claim` has printed the line already."""

    def line(self) -> str:
        mark = "✓" if self.holds else "✗"
        text = f"{mark} {self.statement}"
        if self.margin_text:
            text += f" ({self.margin_text})"
        if not self.holds:
            text += f" -- FAILED: difference {self.difference:.4g}, needed {self.threshold:.4g}"
        return text


def values_of(side, name: str, func: str = "claim") -> tuple[float, ...]:
    """The measurements of one side of a claim, as a tuple of finite floats.

    Parameters
    ----------
    side : EvalResult, sequence of numbers or number
        One side of a claim: its accuracies are taken from an EvalResult.
    name : str
        The parameter name used in the error message.
    func : str
        The function named in the error message.
    """
    if hasattr(side, "accuracies"):
        side = side.accuracies
    if isinstance(side, numbers.Real) and not isinstance(side, bool):
        values = (float(side),)
    elif isinstance(side, Sequence) and not isinstance(side, (str, bytes)) or _is_array(side):
        try:
            values = tuple(float(v) for v in _flat(side))
        except (TypeError, ValueError):
            fail(func, name, "an EvalResult, a sequence of numbers or a number", side, error=TypeError)
    else:
        fail(func, name, "an EvalResult, a sequence of numbers or a number", side, error=TypeError)
    if not values:
        fail(func, name, "at least one measurement", side)
    if not all(math.isfinite(v) for v in values):
        fail(func, name, "finite measurements", side)
    return values


def _is_array(obj) -> bool:
    return hasattr(obj, "tolist") and hasattr(obj, "shape")


def _flat(side):
    if _is_array(side):
        side = side.tolist()
        if not isinstance(side, list):
            side = [side]
    return side


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def spread(a, b) -> float:
    """``sqrt(s_a**2 + s_b**2)``: the spread of the difference of one run of each side.

    Parameters
    ----------
    a : EvalResult, sequence of numbers or number
        The measurements of the first side.
    b : EvalResult, sequence of numbers or number
        The measurements of the second side.
    """
    return _spread(values_of(a, "a", "spread"), values_of(b, "b", "spread"))


def _spread(va: Sequence[float], vb: Sequence[float]) -> float:
    return math.hypot(_std(va), _std(vb))


def claim(statement: str, a, op: str, b, *, margin: float | str | None = None) -> Claim:
    """State that ``a op b`` holds with ``margin`` to spare, and print one checked line.

    Parameters
    ----------
    statement : str
        The conclusion in words, as the chapter states it ("DM beats random at 1 image per class").
    a, b : EvalResult, sequence of float, or float
        The measurements compared (their means), or a constant.
    op : {">", "<", ">=", "<=", "~"}
        ``">"``: mean(a) - mean(b) > margin; ``"<"``: mean(b) - mean(a) > margin;
        ``">="``/``"<="``: the same with ``>=``; ``"~"``: ``|mean(a) - mean(b)| <= margin``
        (the two agree to within the margin; a margin is required).
    margin : None, float or str
        None (plain comparison), an absolute number >= 0, or ``"k std"`` (see the module).

    Returns
    -------
    Claim
        Also printed, as ``✓ statement (margin)`` or ``✗ statement ... FAILED ...``.
    """
    func = "claim"
    if not isinstance(statement, str) or not statement.strip():
        fail(func, "statement", "a non-empty str", statement, error=TypeError)
    if op not in _OPS:
        fail(func, "op", f"one of {_OPS}", op)
    va, vb = values_of(a, "a"), values_of(b, "b")
    if margin is None:
        if op == "~":
            fail(func, "margin", "a number or 'k std' when op is '~'", margin)
        threshold, margin_text = 0.0, ""
    elif isinstance(margin, numbers.Real) and not isinstance(margin, bool):
        threshold = float(margin)
        if not math.isfinite(threshold) or threshold < 0:
            fail(func, "margin", "a finite number >= 0", margin)
        margin_text = f"by more than {threshold:g}" if op != "~" else f"to within {threshold:g}"
    elif isinstance(margin, str) and _MARGIN.match(margin):
        k = float(_MARGIN.match(margin).group(1))
        if len(va) < 2 and len(vb) < 2:
            fail(func, "margin", "'k std' only with at least two measurements on one side", margin)
        threshold = k * _spread(va, vb)
        unit = f"{k:g} std"
        margin_text = f"by more than {unit}" if op != "~" else f"to within {unit}"
    else:
        fail(func, "margin", "None, a number >= 0 or a string such as '2 std'", margin)
    diff = _mean(va) - _mean(vb)
    if op in (">", ">="):
        d = diff
    elif op in ("<", "<="):
        d = -diff
    else:
        d = abs(diff)
    if op in (">", "<"):
        holds = d > threshold
    elif op in (">=", "<="):
        holds = d >= threshold
    else:
        holds = d <= threshold
    result = Claim(statement.strip(), bool(holds), float(d), float(threshold), margin_text)
    print(result.line())
    if not result.holds and os.environ.get("DISTILLKIT_CLAIMS", "") == "raise":
        raise ClaimFailed(result.line())
    return result
