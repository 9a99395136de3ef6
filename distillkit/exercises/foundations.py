"""Checks for the exercises of the foundations part and of the chapter template.

* ``ex-measuring-2``: :func:`check_bootstrap_interval`, the 95 % percentile bootstrap
  interval of a mean accuracy (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993).
* ``ex-template-2``: :func:`check_count_per_class`, per-class counts of a selection.
"""

from __future__ import annotations

import torch

from .._validation import describe
from ._check import Feedback, as_float, as_indices, call, exercise_check

__all__ = ["check_bootstrap_interval", "check_count_per_class"]


def _accuracies() -> list[float]:
    # 16 good runs and 4 failed ones: the bootstrap distribution of the mean is skewed
    g = torch.Generator().manual_seed(3)
    a = torch.cat([0.85 + 0.05 * torch.rand(16, generator=g, dtype=torch.float64),
                   0.3 + 0.1 * torch.rand(4, generator=g, dtype=torch.float64)])
    return [round(v, 4) for v in a.tolist()]


def _percentile_interval(a: torch.Tensor, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    idx = torch.randint(len(a), (n_boot, len(a)), generator=torch.Generator().manual_seed(seed))  # (n_boot, n)
    means = a[idx].mean(1)  # (n_boot,)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def _interval(out, what: str) -> tuple[float, float]:
    if isinstance(out, torch.Tensor) and out.numel() == 2:
        out = tuple(out.flatten())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        if out is None:
            raise Feedback(f"{what} returned None", "did you forget the `return` statement?")
        raise Feedback(f"{what} did not return a pair (low, high)", "end with `return low, high`.")
    return as_float(out[0], what), as_float(out[1], what)


@exercise_check("ex-measuring-2", "bootstrap_interval", "a pair (low, high) of floats")
def check_bootstrap_interval(fn) -> str:
    """Check ``fn(accuracies, n_boot, generator) -> (low, high)``, a 95 % percentile bootstrap
    interval of the mean accuracy, on a skewed set of 20 accuracies.

    Parameters
    ----------
    fn : callable
        The student's ``bootstrap_interval``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.

    Examples
    --------
    >>> check_bootstrap_interval(lambda accuracies, n_boot, generator: (0.0, 1.0))  # doctest: +ELLIPSIS
    Not quite: ...
    CheckResult(exercise='ex-measuring-2', status='wrong')
    """
    accs = _accuracies()
    a = torch.tensor(accs, dtype=torch.float64)
    mean = float(a.mean())
    case = "a list of 20 accuracies with n_boot=4000"

    def run(seed):
        out = call(fn, list(accs), 4000, torch.Generator().manual_seed(seed), case=case,
                   hint="`accuracies` arrives as a list of floats (make it a tensor with torch.as_tensor); "
                   "print shapes to find the line that fails.")
        return _interval(out, "bootstrap_interval")

    low, high = run(0)
    if not (abs(low) < float("inf") and abs(high) < float("inf")):
        raise Feedback("the interval has an infinite or NaN end", "check for divisions by zero or empty tensors.")
    if low > high:
        raise Feedback("the lower end is above the upper end", "return (low, high) in that order: the 2.5 % "
                       "quantile first.")
    if high > 2.0:
        raise Feedback("the interval is on a different scale from the accuracies (above 2)",
                       "keep accuracies as fractions in [0, 1]: do not multiply by 100.")
    if not low <= mean <= high:
        raise Feedback("the interval does not contain the mean accuracy",
                       "the resampled means scatter around the sample mean; take their quantiles.")
    if (low, high) != run(0):
        raise Feedback("two calls with generators seeded alike gave different intervals",
                       "draw every random number from `generator` (for example torch.randint(..., "
                       "generator=generator)).")
    if high - low < 1e-9:
        raise Feedback("the interval has zero width: every resample has the same mean",
                       "resample *with* replacement (torch.randint), not by permuting the data.")
    ref_low, ref_high = _percentile_interval(a, 200_000, 123)
    width, ref_width = high - low, ref_high - ref_low
    if width > 2 * ref_width:
        raise Feedback(f"the interval is {width / ref_width:.1f} times as wide as the bootstrap interval of the mean",
                       "take the quantiles of the *means* of the resamples, not of the accuracies themselves.")
    if (low, high) == run(1):
        raise Feedback("the interval does not depend on the generator, so it is not a bootstrap",
                       "draw n_boot resamples of the accuracies with the generator and take quantiles of "
                       "their means.")
    tol = 0.03 * ref_width  # about four times the Monte-Carlo error of 4000 resamples
    if abs(low - ref_low) <= tol and abs(high - ref_high) <= tol:
        return "a 95 % percentile bootstrap interval of the mean, reproducible with a seeded generator."
    if 0.75 * ref_width < width < 0.92 * ref_width:
        raise Feedback("the interval is too narrow for 95 % (it looks like a 90 % interval)",
                       "a 95 % interval leaves 2.5 % in each tail: quantiles 0.025 and 0.975.")
    if width < 0.75 * ref_width:
        raise Feedback("the interval is much too narrow",
                       "each resample has as many values as the data, there are n_boot of them, and each is "
                       "averaged over its own values.")
    if abs((high - mean) - (mean - low)) < 0.1 * abs((ref_high - mean) - (mean - ref_low)):
        raise Feedback("the interval is symmetric around the mean, but the resampled means are skewed here",
                       "use the 2.5 % and 97.5 % quantiles of the resampled means, not mean +- 1.96 standard "
                       "errors.")
    raise Feedback("the ends differ from a 95 % percentile bootstrap interval by more than the Monte-Carlo error",
                   "draw n_boot resamples of size n with replacement, average each, and take the 2.5 % and "
                   "97.5 % quantiles of those means.")


def _counts(out) -> list[int]:
    if isinstance(out, torch.Tensor) and out.dtype.is_floating_point:
        if out.dim() != 1 or not torch.equal(out, out.round()):
            raise Feedback(f"count_per_class returned {describe(out)}", "return whole counts, one per class.")
        out = out.long()
    return as_indices(out, "count_per_class")


@exercise_check("ex-template-2", "count_per_class", "a tensor (or list) with one count per class")
def check_count_per_class(fn) -> str:
    """Check ``fn(indices, y) -> counts`` (``counts[c]`` = selected examples of class ``c``, one
    entry per class of ``y``) on selections that leave some classes empty.

    Parameters
    ----------
    fn : callable
        The student's ``count_per_class``.
    time_limit : float, keyword-only
        Seconds the check lets your function run before it reports a failure (an infinite loop,
        say); :data:`TIME_LIMIT` by default.

    Returns
    -------
    CheckResult
        True when correct; the feedback is printed.

    Examples
    --------
    >>> check_count_per_class(lambda indices, y: torch.bincount(y[indices], minlength=int(y.max()) + 1))
    Correct: one count per class, in class order, zeros included.
    CheckResult(exercise='ex-template-2', status='correct')
    """
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5).repeat(12)[torch.randperm(60, generator=g)]  # (60,) 5 classes of 12
    cases = []
    for classes in ((0, 1, 2, 3, 4), (0, 2, 4), (1, 2), (0, 1, 3)):  # the last one leaves the top class empty
        pool = torch.cat([(y == c).nonzero().squeeze(1)[:3 + c] for c in classes])
        cases.append(pool[torch.randperm(len(pool), generator=g)])
    for indices in cases:
        counts = _counts(call(fn, indices.clone(), y.clone(), case=f"{len(indices)} selected out of 60"))
        expected = torch.bincount(y[indices], minlength=5).tolist()
        if counts == expected:
            continue
        if counts == torch.bincount(indices).tolist():
            raise Feedback("the counts are those of the indices themselves",
                           "count the labels of the selected examples, y[indices], not the indices.")
        if counts == torch.bincount(y, minlength=5).tolist():
            raise Feedback("the counts are those of the whole data set, not of the selection",
                           "count only the labels of the selected examples.")
        if len(counts) < 5 and counts == expected[:len(counts)]:
            raise Feedback("the counts stop at the largest selected class; classes above it are missing",
                           "every class of y needs an entry, 0 when nothing was selected from it: give "
                           "torch.bincount a minlength.")
        if len(counts) != 5:
            raise Feedback(f"returned {len(counts)} counts for labels 0..4", "return one count per class of y.")
        raise Feedback("some counts are wrong", "take the labels of the selected examples and count each class.")
    return "one count per class, in class order, zeros included."
