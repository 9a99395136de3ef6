"""distillkit.claims and distillkit.tables on hand-worked cases."""

import math

import pytest

from distillkit.claims import ClaimFailed, claim, spread
from distillkit.evaluate import EvalResult
from distillkit.tables import table


@pytest.fixture(autouse=True)
def _print_only(monkeypatch):
    monkeypatch.delenv("DISTILLKIT_CLAIMS", raising=False)


def test_claim_margin_in_std_units(capsys):
    a, b = [0.64, 0.66, 0.65], [0.43, 0.47, 0.40]
    # s_a = 0.01, s_b = sqrt(((0.0233)^2 + (0.0567)^2 + (0.0333)^2) / 2) = 0.0351; spread = 0.0365
    assert spread(a, b) == pytest.approx(math.hypot(0.01, 0.035118845842842), rel=1e-9)
    c = claim("herding beats random", a, ">", b, margin="2 std")
    assert c.holds and c.threshold == pytest.approx(2 * spread(a, b))
    assert capsys.readouterr().out == "✓ herding beats random (by more than 2 std)\n"
    # the difference is 0.2167 = 5.9 spreads: 6 std fails
    assert not claim("by six", a, ">", b, margin="6 std").holds
    assert capsys.readouterr().out.startswith("✗ by six (by more than 6 std) -- FAILED")


def test_claim_sides_and_ops(capsys):
    r = EvalResult((0.5, 0.52), (0, 1))
    assert claim("above chance", r, ">", 0.1, margin=0.3).holds
    assert not claim("above chance by 0.5", r, ">", 0.1, margin=0.5).holds
    assert claim("below", 0.1, "<", r).holds
    assert claim("agree", r, "~", 0.5, margin=0.02).holds
    assert not claim("agree tightly", r, "~", 0.5, margin=0.005).holds
    assert claim("at least", 0.5, ">=", 0.5).holds and not claim("strictly", 0.5, ">", 0.5).holds


def test_claim_raises_when_asked(monkeypatch, capsys):
    monkeypatch.setenv("DISTILLKIT_CLAIMS", "raise")
    with pytest.raises(ClaimFailed, match="✗ wrong"):
        claim("wrong", 0.1, ">", 0.2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(statement="", a=1, op=">", b=0), "'statement' parameter of claim"),
    (dict(statement="s", a=1, op="!=", b=0), "'op' parameter of claim"),
    (dict(statement="s", a="x", op=">", b=0), "'a' parameter of claim"),
    (dict(statement="s", a=[], op=">", b=0), "'a' parameter of claim"),
    (dict(statement="s", a=1, op=">", b=[float("nan")]), "'b' parameter of claim"),
    (dict(statement="s", a=1, op=">", b=0, margin="2 sd"), "'margin' parameter of claim"),
    (dict(statement="s", a=1, op=">", b=0, margin=-1), "'margin' parameter of claim"),
    (dict(statement="s", a=1, op=">", b=0, margin="2 std"), "at least two measurements"),
    (dict(statement="s", a=1, op="~", b=0), "'margin' parameter of claim"),
])
def test_claim_bad_input(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        claim(**kwargs)


def test_table_text_and_html():
    t = table([["random", EvalResult((0.43, 0.47), (0, 1)), 0.851], ["herding", EvalResult((0.675,), (0,)), None]],
              columns=["method", "1 ipc", "10 ipc"], percent=True)
    assert str(t).splitlines() == [
        "method           1 ipc  10 ipc",
        "-------  -------------  ------",
        "random      45.0 ± 2.8    85.1",
        "herding  67.5 (1 seed)       -",
    ]
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "overflow-x:auto" in html and "45.0 ± 2.8" in html
    rows = table([{"a": 1, "b": "x<y"}], title="T")
    assert "x&lt;y" in rows._repr_html_() and str(rows).startswith("T\n")


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows="abc", columns=["a"]), "'rows' parameter of table"),
    (dict(rows=[[1, 2]], columns=None), "'columns' parameter of table"),
    (dict(rows=[[1, 2]], columns=["a"]), "rows of 1 cells"),
    (dict(rows=[[1]], columns=["a"], digits=-1), "'digits' parameter of table"),
])
def test_table_bad_input(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        table(**kwargs)
