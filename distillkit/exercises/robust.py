"""Checks for the coding exercise of the robust-distillation chapter.

* ``ex-robust-2``: :func:`check_voronoi_from_scratch`, the class-wise Voronoi cells of the
  synthetic points, against :func:`distillkit.robust.voronoi_groups` (Vahidian et al., ICLR 2025).
"""

from __future__ import annotations

import torch

from ..robust import voronoi_groups
from ._check import Feedback, as_indices, call, exercise_check, first_match

__all__ = ["check_voronoi_from_scratch"]


def _voronoi(f_real, y_real, f_syn, y_syn, *, own_class=True, local=False, farthest=False):
    d2 = torch.cdist(f_real, f_syn) ** 2  # (n, m)
    if own_class:
        d2 = d2.masked_fill(y_real[:, None] != y_syn[None, :], float("nan" if farthest else "inf"))
    if farthest:
        cell = d2.nan_to_num(-1.0).argmax(1)
    else:
        cell = d2.argmin(1)
    if local:  # the position of the chosen point among its class's synthetic points
        cell = torch.tensor([int((y_syn[:j] == y_syn[j]).sum()) for j in cell.tolist()])
    return cell.tolist()


@exercise_check("ex-robust-2", "voronoi_from_scratch", "a 1-D int64 tensor: one row index of f_syn per real example")
def check_voronoi_from_scratch(fn) -> str:
    """Check ``fn(f_real, y_real, f_syn, y_syn) -> cells`` (each real example's nearest
    synthetic point of its own class, as a row index of ``f_syn``) against ``voronoi_groups``,
    with the synthetic points of the classes interleaved.

    Parameters
    ----------
    fn : callable
        The student's ``voronoi_from_scratch``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    f_real, y_real = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    f_syn, y_syn = torch.randn(9, 4, generator=g), torch.arange(3).repeat(3)  # (9,) classes 0, 1, 2, 0, 1, 2, ...
    cells = as_indices(call(fn, f_real, y_real, f_syn, y_syn, case="60 real and 9 synthetic points in 3 classes"),
                       "voronoi_from_scratch")
    expected = voronoi_groups(f_real, f_syn, y_real, y_syn).tolist()
    if cells == expected:
        return "every real example is in the cell of its nearest synthetic point of the same class."
    if len(cells) != len(expected):
        raise Feedback(f"returned {len(cells)} cells for {len(expected)} real examples",
                       "return one synthetic index per real example.")
    hint = first_match(cells, [
        ("return the row of f_syn (a global index), not the position among the class's synthetic points.",
         _voronoi(f_real, y_real, f_syn, y_syn, local=True)),
        ("only synthetic points of the example's own class are candidates.",
         _voronoi(f_real, y_real, f_syn, y_syn, own_class=False)),
        ("the cell is the *nearest* synthetic point: argmin of the distance.",
         _voronoi(f_real, y_real, f_syn, y_syn, farthest=True)),
    ], lambda a, b: a == b)
    if hint:
        raise Feedback("the cells differ from voronoi_groups", hint)
    if not all(0 <= j < 9 for j in cells):
        raise Feedback("some cells are not row indices of f_syn", "return indices in [0, m) into f_syn.")
    if any(int(y_syn[j]) != int(c) for j, c in zip(cells, y_real.tolist())):
        raise Feedback("some examples are assigned to a synthetic point of another class",
                       "restrict the candidates of an example of class c to the synthetic points with y_syn == c.")
    raise Feedback("some examples are not in the cell of their nearest synthetic point",
                   "compare squared Euclidean distances to the candidates and take the smallest.")
