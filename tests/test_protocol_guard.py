"""Guard for one evaluation protocol (issue: one protocol for the whole book).

Every chapter takes its data from ``protocol.data()`` and trains and evaluates through a
protocol of :mod:`distillkit.protocols` (``evaluate``, ``train``, ``random_baseline``, or a
named ``variant``), so a random baseline at a given budget prints the same number in every
chapter that shows it. This test reads each chapter's code and fails on training or
evaluation outside a protocol: direct calls of ``train_model`` / ``evaluate_set``, networks
built by hand, data loaded around the protocol's splits, the old ``CPU`` protocol, or a
caller's own test set passed to ``evaluate``. A line that must do one of these anyway (a
from-scratch loop that is compared with the library, say) carries the comment
``# outside the protocol: <reason>``.

Chapters not yet moved onto the protocols are listed in ``PENDING``: their test is an
expected failure (strict, so a converted chapter that is still listed fails until it is
removed from the list).
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
EXEMPT_MARK = re.compile(r"#\s*outside the protocol:\s*\S")
FORBIDDEN = {
    r"\btrain_model\s*\(": "train_model called directly (use protocol.train / protocol.evaluate)",
    r"\bevaluate_set\s*\(": "evaluate_set called directly (use protocol.evaluate)",
    r"\bConvNet\s*\(": "a network built by hand (use protocol.model_fn())",
    r"\bload_(digits|mnist|fashion_mnist)\s*\(": "data loaded around the protocol (use protocol.data())",
    r"\bCPU\b\s*[.,)]|import[^\n]*\bCPU\b": "the old CPU protocol",
    r"\.evaluate\s*\([^()\n]*,[^()\n]*,\s*x_\w*test": "a caller's own test set passed to evaluate",
}
# Chapters that train no image classifier, with the reason they need no protocol of
# distillkit.protocols.
NOT_APPLICABLE = {
    "05_theory/01_multi_index.ipynb": "teacher-student regression on synthetic multi-index data; its "
                                      "protocol is the theory's own (distillkit.theory)",
}
# Not yet converted (remove a chapter from this list when it moves onto the protocols). Empty:
# every chapter measures through distillkit.protocols.
PENDING: set[str] = set()


def violations(path: pathlib.Path) -> list[str]:
    """Lines of the notebook's code that train or evaluate outside a protocol."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for number, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            if EXEMPT_MARK.search(line):
                continue
            code = line.split("#", 1)[0]
            for pattern, why in FORBIDDEN.items():
                if re.search(pattern, code):
                    found.append(f"cell {number}: {why}: {line.strip()}")
    return found


def _key(path):
    return path.relative_to(ROOT / "chapters").as_posix()


@pytest.mark.parametrize("path", CHAPTERS, ids=_key)
def test_chapter_measures_through_a_protocol(path):
    key = _key(path)
    if key in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[key])
    found = violations(path)
    if key in PENDING:
        if found:
            pytest.xfail(f"not yet moved onto distillkit.protocols ({len(found)} lines)")
        pytest.fail(f"{key} measures through the protocols now: remove it from PENDING")
    assert not found, "training or evaluation outside distillkit.protocols:\n" + "\n".join(found)


def test_guard_catches_each_kind(tmp_path):
    lines = ["net = train_model(model, x, y, epochs=3)", "r = evaluate_set(fn, x, y, xt, yt)",
             "net = ConvNet(1, 10, im_size=28)", "x, y = load_mnist(split='train')",
             "from distillkit.protocols import CPU", "r = MNIST.evaluate(x[s], y[s], x_test, y_test)"]
    ok = ["r = MNIST.evaluate(x[s], y[s], seeds=(0,))", "net = DIGITS.train(x, y, generator=0)",
          "lib = train_model(net, x, y)  # outside the protocol: compared with the loop above"]
    nb = {"cells": [{"cell_type": "code", "source": [line + "\n" for line in lines + ok], "metadata": {},
                     "outputs": [], "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    found = violations(path)
    assert len(found) == len(lines), found
