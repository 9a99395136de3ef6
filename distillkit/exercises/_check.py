"""The machinery every exercise check shares: run the student's function, turn what goes
wrong into feedback, never raise.

A check is a short function body decorated with :func:`exercise_check`. The body calls the
student's function through :func:`call`, converts what comes back with :func:`as_tensor`,
:func:`as_indices` or :func:`as_float`, compares it with the library (the independent
oracle) and raises :class:`Feedback` with *what is wrong* and *a hint* at the first problem.
Typical mistakes are recognised by computing them (the wrong variant) and comparing, so the
hint names the mistake instead of showing the expected values. The decorator catches
everything, prints one message and returns a :class:`CheckResult` whose truth value is the
verdict, so a student notebook always runs top to bottom.

Every check runs under a time limit (``time_limit`` seconds, :data:`TIME_LIMIT` by default):
a student function that never returns (an infinite loop is a normal mistake) ends the check
with a failed result that says so. How: in the main thread on POSIX (where a Jupyter kernel
runs its cells) a ``SIGALRM`` timer raises inside the running code, which also interrupts
``time.sleep`` and blocking reads; elsewhere (Windows, a worker thread) a watchdog thread
raises the same exception in the checking thread (``PyThreadState_SetAsyncExc``). Both stop
pure-Python loops; neither can stop one long call into C (one huge matrix product), which
ends when that call returns. A thread with a timeout would leave the loop burning the
kernel's CPU for ever, and a subprocess cannot run a function defined in a notebook under
``spawn`` (macOS, Windows) while ``fork`` is unsafe once torch's threads have started, so
the check stays in the student's own process.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .._validation import describe

TIME_LIMIT = 30.0  # seconds a check may run by default (the library's checks take well under 1 s)

CHECKS: dict = {}  # exercise label -> check function, filled by @exercise_check


@dataclass(frozen=True)
class CheckResult:
    """What a check found. ``bool(result)`` is true only when the solution is correct.

    Attributes
    ----------
    exercise : str
        The label of the exercise in the book, e.g. ``"ex-robust-2"``.
    status : {"correct", "wrong", "not done"}
        "not done" while the student's function still raises ``NotImplementedError``.
    message : str
        The feedback that was printed: ``Correct: ...``, ``Not done yet: ...`` or ``Not
        quite: ...`` followed by a ``Hint: ...`` line.
    """

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    @property
    def hint(self) -> str:
        """The hint line, without its ``Hint:`` prefix ("" when there is none)."""
        for line in self.message.splitlines():
            if line.startswith("Hint: "):
                return line[len("Hint: "):]
        return ""

    def assert_correct(self) -> None:
        """Raise ``AssertionError`` with the printed feedback (hint included) unless correct.

        For autograders (nbgrader's test cells), where a failed test is a raised error:
        ``check_f(f).assert_correct()``. The check itself still prints and never raises.
        """
        if not self:
            raise AssertionError(self.message)

    def __repr__(self) -> str:
        return f"CheckResult(exercise={self.exercise!r}, status={self.status!r})"

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: the feedback has been printed already."""


class Feedback(Exception):
    """Raised inside a check body: ``problem`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, problem: str, hint: str):
        super().__init__(problem)
        self.problem, self.hint = problem, hint


class _NotDone(Exception):
    pass


class _TimeUp(BaseException):
    """Raised into the running check when its time is up (a BaseException, so that a student's
    ``except Exception`` cannot swallow it)."""


@contextmanager
def _time_limit(seconds: float):
    """Raise :class:`_TimeUp` in the code run under this block once ``seconds`` have passed."""
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def on_alarm(signum, frame):
            raise _TimeUp

        start = time.monotonic()
        previous_handler = signal.signal(signal.SIGALRM, on_alarm)
        previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
            if previous_delay > 0:  # re-arm a timer the caller had set, minus the time we took
                left = max(previous_delay - (time.monotonic() - start), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
        return
    target = ctypes.c_ulong(threading.get_ident())
    lock, state = threading.Lock(), {"done": False, "fired": False}

    def watchdog():
        with lock:
            if not state["done"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_TimeUp))

    timer = threading.Timer(seconds, watchdog)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
            if state["fired"]:  # not raised yet (the check ended just in time): take it back
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
        timer.cancel()


def call(fn, *args, case: str = "", hint: str = ""):
    """Run the student's ``fn(*args)``. A ``NotImplementedError`` (the stub) stops the check as
    "not done"; any other exception becomes feedback naming the case it was raised on."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise _NotDone() from None
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a student's error is feedback, not a crash
        where = f" on {case}" if case else ""
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Feedback(f"your function raised {type(err).__name__}{where}: {message}".rstrip(": "),
                       hint or "read the error message; print the shapes of your intermediate tensors.") from None


def _none_check(out, what: str) -> None:
    if out is None:
        raise Feedback(f"{what} returned None", "did you forget the `return` statement?")


def as_tensor(out, what: str, *, shape=None, dtype=None) -> torch.Tensor:
    """``out`` as a tensor, with feedback when it is not one or has the wrong shape or dtype."""
    _none_check(out, what)
    if isinstance(out, tuple) and hasattr(out, "values") and hasattr(out, "indices"):
        raise Feedback(f"{what} returned a (values, indices) pair, not a tensor",
                       "`max(dim)` and `median(dim)` return both: take `.values`.")
    if not isinstance(out, torch.Tensor):
        raise Feedback(f"{what} returned {describe(out)}, not a tensor",
                       "return a torch.Tensor (build it with torch operations on the inputs).")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise Feedback(f"{what} returned a tensor of shape {tuple(out.shape)}; expected shape {tuple(shape)}",
                       "check which dimension you reduce over, and squeeze or reshape where needed.")
    if dtype is not None and out.dtype != dtype:
        raise Feedback(f"{what} returned {out.dtype} for {dtype} inputs",
                       "compute in the dtype of the inputs: avoid creating tensors with a default dtype.")
    return out


def as_indices(out, what: str) -> list[int]:
    """``out`` (a 1-D integer tensor, or a list or tuple of ints) as a list of ints."""
    _none_check(out, what)
    if isinstance(out, torch.Tensor):
        if out.dtype.is_floating_point or out.dtype.is_complex or out.dtype == torch.bool:
            raise Feedback(f"{what} returned a tensor of dtype {out.dtype}",
                           "indices are integers: keep them int64 (e.g. from argmax, nonzero or sort).")
        if out.dim() != 1:
            raise Feedback(f"{what} returned a tensor of shape {tuple(out.shape)}, not a 1-D list of indices",
                           "return one index per pick, as a flat list or a 1-D tensor.")
        return [int(i) for i in out.tolist()]
    if isinstance(out, (list, tuple)):
        values = []
        for item in out:
            if isinstance(item, torch.Tensor) and item.numel() == 1 and not item.dtype.is_floating_point:
                item = item.item()
            if isinstance(item, bool) or not hasattr(item, "__index__"):
                raise Feedback(f"{what} returned a sequence holding {describe(item)}",
                               "indices are plain ints: convert picks with int(...) before appending them.")
            values.append(int(item))
        return values
    raise Feedback(f"{what} returned {describe(out)}", "return the indices as a list of ints or a 1-D int64 tensor.")


def as_float(out, what: str) -> float:
    """``out`` (a Python number or a one-element tensor) as a float."""
    _none_check(out, what)
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out.detach().reshape(()))
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return float(out)
    if hasattr(out, "item") and hasattr(out, "dtype"):  # NumPy scalars and one-element arrays
        return float(out.item())
    raise Feedback(f"{what} returned {describe(out)}, not a single number",
                   "return one number (a float or a one-element tensor).")


def constant_factor(candidate: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> float | None:
    """The constant ``c`` with ``candidate == c * expected`` (elementwise, up to ``rtol``), or None."""
    candidate, expected = candidate.detach().double().flatten(), expected.detach().double().flatten()
    if candidate.shape != expected.shape or expected.abs().max() == 0:
        return None
    c = float((candidate @ expected) / (expected @ expected))
    if torch.allclose(candidate, c * expected, rtol=rtol, atol=rtol * float(expected.abs().max())):
        return c
    return None


def first_match(candidate, variants, same) -> str | None:
    """The hint of the first ``(hint, value)`` in ``variants`` that ``same(candidate, value)``."""
    for hint, value in variants:
        try:
            matched = bool(same(candidate, value))
        except Exception:  # noqa: BLE001 - a variant that cannot be compared simply does not match
            matched = False
        if matched:
            return hint
    return None


def exercise_check(exercise: str, function: str, returns: str):
    """Turn ``body(fn) -> success text`` into a check that prints feedback and never raises.

    ``exercise`` is the label of the exercise in the book, ``function`` the name of the
    student's function and ``returns`` what it should return (used in fallback hints).
    """

    def wrap(body):
        @functools.wraps(body)
        def check(fn, *, time_limit: float = TIME_LIMIT) -> CheckResult:
            try:
                if not callable(fn):
                    raise Feedback(f"{body.__name__} expects your function itself, got {describe(fn)}",
                                   f"pass the function without calling it: {body.__name__}({function}).")
                if (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                        or not math.isfinite(time_limit) or time_limit <= 0):
                    raise Feedback(f"The 'time_limit' parameter of {body.__name__} must be a finite real number "
                                   f"in (0, inf). Got {describe(time_limit)} instead",
                                   f"call {body.__name__}({function}) or give a positive number of seconds.")
                try:
                    with _time_limit(float(time_limit)), torch.random.fork_rng(devices=[]):  # global RNG kept
                        status, message = "correct", f"Correct: {body(fn)}"
                except _TimeUp:
                    raise Feedback(f"your function did not return within {time_limit:g} s: an infinite loop?",
                                   f"check that every loop of {function} ends (a `while` whose condition never "
                                   "changes, an index that is never increased).") from None
            except _NotDone:
                status = "not done"
                message = (f"Not done yet: {function} still raises NotImplementedError. "
                           "Replace its body with your code and run this cell again.")
            except Feedback as fb:
                status, message = "wrong", f"Not quite: {fb.problem}.\nHint: {fb.hint}"
            except Exception as err:  # noqa: BLE001 - the check must never stop a notebook
                status = "wrong"
                message = (f"Not quite: the result of {function} could not be checked "
                           f"({type(err).__name__}: {err}).\nHint: {function} should return {returns}.")
            print(message)
            return CheckResult(exercise, status, message)

        signature = inspect.signature(body)
        limit = inspect.Parameter("time_limit", inspect.Parameter.KEYWORD_ONLY, default=TIME_LIMIT, annotation="float")
        check.__signature__ = signature.replace(parameters=[*signature.parameters.values(), limit],
                                                return_annotation="CheckResult")
        check.exercise, check.function = exercise, function
        CHECKS[exercise] = check
        return check

    return wrap
