"""Checks for the coding exercise of the coreset comparison chapter.

* ``ex-comparison-2``: :func:`check_jaccard_matrix`, the Jaccard overlaps
  ``|A & B| / |A | B|`` of several selections (Jaccard, 1912), against Python sets.
"""

from __future__ import annotations

import torch

from .._validation import describe
from ._check import Feedback, as_tensor, call, exercise_check, first_match

__all__ = ["check_jaccard_matrix"]


def _overlaps(selections, how="jaccard") -> torch.Tensor:
    sets = [set(s.tolist()) for s in selections]
    out = torch.empty(len(sets), len(sets), dtype=torch.float64)  # (M, M)
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            shared = len(a & b)
            below = {"jaccard": len(a | b), "smaller": min(len(a), len(b)), "first": len(a),
                     "sum": len(a) + len(b)}[how]
            out[i, j] = shared / below if below else (1.0 if how == "jaccard" else float("nan"))
    return out


@exercise_check("ex-comparison-2", "jaccard_matrix", "an (M, M) float64 tensor of Jaccard overlaps")
def check_jaccard_matrix(fn) -> str:
    """Check ``fn(selections) -> overlaps`` (the ``(M, M)`` float64 tensor of Jaccard overlaps
    of ``M`` index tensors, 1 on the diagonal) on selections of different sizes, including
    identical, disjoint and empty ones.

    Parameters
    ----------
    fn : callable
        The student's ``jaccard_matrix``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.
    """
    g = torch.Generator().manual_seed(0)
    some = [torch.randperm(40, generator=g)[:k] for k in (10, 10, 16, 5)]
    cases = [
        ("5 selections of 5 to 16 indices", some + [some[0][torch.randperm(10, generator=g)]]),  # a shuffled copy
        ("3 selections, two of them disjoint", [torch.arange(0, 6), torch.arange(6, 12), torch.arange(3, 9)]),
        ("an empty selection beside two others", [torch.arange(4), torch.empty(0, dtype=torch.int64), torch.arange(2)]),
        ("two empty selections", [torch.empty(0, dtype=torch.int64)] * 2),
    ]
    for case, selections in cases:
        m = len(selections)
        out = call(fn, [s.clone() for s in selections], case=case)
        if isinstance(out, list):
            raise Feedback(f"jaccard_matrix returned {describe(out)}, not a tensor",
                           "fill a tensor made with torch.empty or torch.ones(M, M, dtype=torch.float64).")
        out = as_tensor(out, "jaccard_matrix", shape=(m, m))
        if out.dtype != torch.float64:
            raise Feedback(f"jaccard_matrix returned {out.dtype}", "create the matrix with dtype=torch.float64.")
        expected = _overlaps(selections)
        if torch.allclose(out, expected, atol=1e-12):
            continue
        if not torch.isfinite(out).all():
            raise Feedback(f"the matrix has NaN or inf entries ({case})",
                           "two empty selections have an empty union: count them as identical (overlap 1).")
        hint = first_match(out, [
            ("divide by the size of the union |A | B|, not by the size of the smaller selection.",
             _overlaps(selections, "smaller")),
            ("divide by the size of the union |A | B|, not by the size of one selection.", _overlaps(selections, "first")),
            ("the union counts shared indices once: |A | B| = |A| + |B| - |A & B|.", _overlaps(selections, "sum")),
        ], lambda a, b: torch.allclose(a.clone().fill_diagonal_(1.0), b.clone().fill_diagonal_(1.0), atol=1e-12))
        if hint is None and not torch.equal(out.diagonal(), torch.ones(m, dtype=torch.float64)):
            raise Feedback(f"the diagonal is not all ones ({case})", "a selection overlaps itself completely.")
        raise Feedback(f"some overlaps are wrong ({case})",
                       hint or "compare the selections as sets of indices: the order of the indices does not matter.")
    return "Jaccard overlaps of sets of indices, 1 on the diagonal, empty selections included."
