"""Write an nbgrader course from the book: one assignment per chapter, graded by nbgrader.

The chapters are read through the student export's walk (``export_student.solution_segments``),
so a solution is found exactly as ``./book.sh student`` finds it. Every cell outside the
solutions is kept (outputs cleared). In place of each solution, the source notebook
(``source/<name>/<name>.ipynb``, nbgrader's instructor version) gets:

* coding: a solution cell holding the stub's ``def`` line(s) and, between nbgrader's
  ``### BEGIN SOLUTION`` / ``### END SOLUTION``, the reference solution (the chapter's code,
  which redefines the function); then a locked, autograded test cell (``CHECK_POINTS``)
  calling the exercise's check with ``.assert_correct()``, so that a wrong answer raises an
  ``AssertionError`` carrying the hint the student sees; and, where a check tests fixed
  cases that a function could special-case, a locked test cell of hidden tests
  (``HIDDEN_POINTS``) on fresh inputs, between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``;
* experimental: an (ungraded) solution code cell with the reference experiment between the
  markers, then a manually graded markdown answer cell (``EXPERIMENT_POINTS``, the rubric of
  the instructor's guide in its metadata);
* conceptual (and derivation): a manually graded markdown answer cell (``CONCEPT_POINTS``)
  with the reference answer between the markers and its rubric in the metadata.

``nbgrader generate_assignment`` then removes the solutions and hidden tests; nbgrader does
the rest (autograde, feedback, gradebook). Usage:
``python tools/nbgrader_course.py [--out course] [chapters/...ipynb ...]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from export_student import KEY, ROOT, _Ids, _lines, _source, exercise_kinds, solution_segments  # noqa: E402

CHECK_POINTS, HIDDEN_POINTS, CONCEPT_POINTS, EXPERIMENT_POINTS = 2, 1, 3, 10
TIMEOUT = 600  # seconds per cell in autograde (the chapters' longest cells take about a minute)

CONFIG = f'''"""nbgrader configuration of the distillkit course (written by tools/nbgrader_course.py)."""

c = get_config()  # noqa: F821 - provided by nbgrader
c.CourseDirectory.course_id = "distillkit"
# a cell that runs longer is interrupted (an infinite loop in a submission): it gets a
# CellTimeoutError, its points are lost, and the rest of the notebook still runs
c.Execute.timeout = {TIMEOUT}
c.Execute.interrupt_on_timeout = True
# the stub above the markers stays: the student replaces its body
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
'''

RUBRIC_CONCEPT = (f"Conceptual answer, {CONCEPT_POINTS} points (instructor's guide, 'Grading with nbgrader'): "
                  "1 for the right claim; 1 for an argument that supports it with the chapter's definitions; "
                  "1 for precision (assumptions stated, the chapter's notation, no claim the argument does not "
                  "support). Compare with the reference answer in the source notebook.")
RUBRIC_EXPERIMENT = (f"Experimental answer, {EXPERIMENT_POINTS} points: the instructor's guide's rubric, 0-2 points "
                     "each for reproducible seeds (every random choice seeded through generator=), repeated runs "
                     "(mean +- std over >= 3 seeds), baseline (random selection at the same budget and protocol), "
                     "protocol (nothing tuned on the test set, stated in one sentence) and discussion (answers "
                     "the question with the numbers, differences within the spread are not effects, one "
                     "limitation named).")

# Two chapters write their coding solution inline, not as the function the stub asks for: the
# chapter's own logic in the stub's signature (tests/test_exercises.py checks these very sources).
INLINE_REFERENCE = {
    "ex-gradient-2": '''def craig_weights(features, y, indices):
    weights = torch.zeros(len(indices))
    for c in y.unique():
        mine = (y[indices] == c).nonzero().squeeze(1)
        nearest = torch.cdist(features[y == c], features[indices[mine]]).argmin(1)
        weights[mine] = torch.bincount(nearest, minlength=len(mine)).float()
    return weights
''',
    "ex-multiindex-2": '''def two_layer_loss(net, x, y):
    return 0.5 * ((torch.relu(x @ net.W.T + net.b) @ net.a - y) ** 2).mean()
''',
}

# Hidden tests: fresh inputs that the check's fixed cases do not contain, compared with the
# library, so that a function special-casing the check's cases loses these points.
HIDDEN = {
    "ex-template-2": '''import torch as _torch
_g = _torch.Generator().manual_seed(2718)
_y = _torch.randint(0, 7, (300,), generator=_g)
_y[:7] = _torch.arange(7)  # every class present among the picks below
_idx = _torch.cat([_torch.arange(7), 7 + _torch.randperm(293, generator=_g)[:60]])
_out = count_per_class(_idx.clone(), _y.clone())
assert [int(v) for v in _out] == _torch.bincount(_y[_idx], minlength=7).tolist(), \\
    "count_per_class is wrong on a fresh random selection"
''',
    "ex-multiindex-2": '''import torch as _torch
from distillkit.models import TwoLayerNet as _Net
from distillkit.theory import first_layer_gradient as _grad
_g = _torch.Generator().manual_seed(2718)
_net = _Net(5, 6, generator=11).double()
with _torch.no_grad():
    _net.a.add_(0.25)
_x, _y = _torch.randn(40, 5, generator=_g, dtype=_torch.float64), _torch.randn(40, generator=_g, dtype=_torch.float64)
_loss = two_layer_loss(_net, _x, _y)
with _torch.no_grad():
    _expected = 0.5 * ((_net(_x) - _y) ** 2).mean()
assert _torch.allclose(_loss.detach().reshape(()), _expected, rtol=1e-10), "the loss is wrong on a fresh network"
(_gw,) = _torch.autograd.grad(_loss.reshape(()), _net.W)
assert _torch.allclose(_gw, _grad(_net, _x, _y), atol=1e-12), "the gradient is wrong on a fresh network"
''',
}


def assignment_name(path: pathlib.Path) -> str:
    """``01_multi_index.ipynb`` -> ``multi_index`` (the chapters' names are unique)."""
    return re.sub(r"^\d+_", "", path.stem)


def _grader(grade_id, *, solution, grade, locked, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _code(text, nbgrader, extra=None):
    return {"cell_type": "code", "execution_count": None, "outputs": [], "source": _lines(text),
            "metadata": {"nbgrader": nbgrader, **(extra or {})}}


def _markdown(text, nbgrader, extra=None):
    return {"cell_type": "markdown", "source": _lines(text), "metadata": {"nbgrader": nbgrader, **(extra or {})}}


def _solution_code(code_cells) -> str:
    return "\n\n".join(_source(c).strip("\n") for c in code_cells if _source(c).strip())


def _solution_prose(cells) -> str:
    return "\n\n".join(_source(c).strip("\n") for c in cells if c["cell_type"] == "markdown")


def exercise_cells(label: str, kind: str, inside: list) -> list[dict]:
    """The nbgrader cells that stand in for the solution of exercise ``label``."""
    from distillkit.exercises import CHECKS

    code_cells = [c for c in inside if c["cell_type"] == "code"]
    link = next((c["metadata"][KEY] for c in code_cells if isinstance(c["metadata"].get(KEY), dict)), None)
    info = {KEY: {"exercise": label, "kind": kind}}
    if kind == "coding" or (link and kind not in ("conceptual", "derivation", "experimental")):
        if not link or label not in CHECKS:
            raise ValueError(f"coding exercise {label} has no check to grade it with")
        check = CHECKS[label]
        reference = INLINE_REFERENCE.get(label, "") + "\n\n" + _solution_code(code_cells)
        text = (f"# Exercise {label}: your code here (replace the body of {check.function})\n"
                f"{link['stub'].rstrip()}\n\n\n### BEGIN SOLUTION\n{reference.strip()}\n### END SOLUTION\n")
        cells = [_code(text, _grader(f"{label}-solution", solution=True, grade=False, locked=False), info),
                 _code(f"# Autograder test of exercise {label} ({CHECK_POINTS} points): run it, do not edit it.\n"
                       f"from distillkit.exercises import {check.__name__}\n\n"
                       f"{check.__name__}({check.function}).assert_correct()\n",
                       _grader(f"{label}-check", solution=False, grade=True, locked=True, points=CHECK_POINTS), info)]
        if label in HIDDEN:
            cells.append(_code(f"# Hidden tests of exercise {label} ({HIDDEN_POINTS} point): run when grading.\n"
                               f"### BEGIN HIDDEN TESTS\n{HIDDEN[label].strip()}\n### END HIDDEN TESTS\n",
                               _grader(f"{label}-hidden", solution=False, grade=True, locked=True,
                                       points=HIDDEN_POINTS), info))
        return cells
    if kind == "experimental" or (not kind and code_cells):
        rubric = {KEY: {**info[KEY], "rubric": RUBRIC_EXPERIMENT}}
        return [_code(f"# Exercise {label}: your experiment here\n### BEGIN SOLUTION\n{_solution_code(code_cells)}\n"
                      "### END SOLUTION\n", _grader(f"{label}-code", solution=True, grade=False, locked=False), info),
                _markdown(f"*Exercise {label}: what you observe and conclude ({EXPERIMENT_POINTS} points, graded "
                          "by hand with the rubric of the instructor's guide).*\n\n### BEGIN SOLUTION\n"
                          f"{_solution_prose(inside) or '(see the reference experiment above)'}\n### END SOLUTION\n",
                          _grader(f"{label}-answer", solution=True, grade=True, locked=False,
                                  points=EXPERIMENT_POINTS), rubric)]
    rubric = {KEY: {**info[KEY], "rubric": RUBRIC_CONCEPT}}
    return [_markdown(f"*Exercise {label}: write your answer here ({CONCEPT_POINTS} points, graded by hand).*\n\n"
                      f"### BEGIN SOLUTION\n{_solution_prose(inside)}\n### END SOLUTION\n",
                      _grader(f"{label}-answer", solution=True, grade=True, locked=False, points=CONCEPT_POINTS),
                      rubric)]


def source_version(nb: dict) -> dict:
    """nbgrader's source (instructor) notebook of the chapter ``nb``."""
    kinds = exercise_kinds(nb)
    ids = _Ids()
    out = copy.deepcopy(nb)
    cells = []
    for segment in solution_segments(nb):
        if segment[0] == "cell":
            new = [copy.deepcopy(segment[1])]
        else:
            _, label, inside = segment
            new = exercise_cells(label, kinds.get(label, ""), inside)
        for cell in new:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
            grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
            cell["id"] = ids(grade_id or cell.get("id") or "cell")
            cells.append(cell)
    out["cells"] = cells
    out["metadata"].pop("widgets", None)
    out["nbformat"], out["nbformat_minor"] = 4, max(5, nb.get("nbformat_minor", 5))
    return out


def points(nb: dict) -> dict:
    """``{"autograded": (cells, points), "manual": (cells, points)}`` of a source notebook."""
    auto = [c["metadata"]["nbgrader"] for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade") and not c["metadata"]["nbgrader"]["solution"]]
    manual = [c["metadata"]["nbgrader"] for c in nb["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade") and c["metadata"]["nbgrader"]["solution"]]
    return {"autograded": (len(auto), sum(m["points"] for m in auto)),
            "manual": (len(manual), sum(m["points"] for m in manual))}


def write_course(out: pathlib.Path, notebooks) -> list[str]:
    """Write ``nbgrader_config.py`` and one source assignment per chapter; the names written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
    names = []
    for path in notebooks:
        nb = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        name = assignment_name(pathlib.Path(path))
        source = source_version(nb)
        target = out / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(source, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        p = points(source)
        print(f"{target}: {p['autograded'][0]} autograded cell(s), {p['autograded'][1]} points; "
              f"{p['manual'][0]} manually graded, {p['manual'][1]} points")
        names.append(name)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "course")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                                         if ".ipynb_checkpoints" not in p.parts)
    write_course(args.out, notebooks)
    print(f"[book] nbgrader course in {args.out}: cd {args.out} && nbgrader generate_assignment NAME")
    return 0


if __name__ == "__main__":
    sys.exit(main())
