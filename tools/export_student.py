"""Export student notebooks: every chapter with its exercise solutions removed, and only them.

A solution is everything from a markdown ``{solution-start} LABEL`` fence to the
``{solution-end}`` fence (both included), which is how the chapters write them (see
CONTRIBUTING.md). Each removed solution is replaced by a placeholder that depends on the kind
the exercise names (``*(coding)*``, ``*(experimental)*``, ``*(conceptual)*``, ...):

* coding: a code cell ``# Exercise LABEL: your code here`` followed by the stub and the check
  call stored in the ``"distillkit"`` metadata of the solution's code cell, e.g.
  ``{"stub": "def f(x):\\n    raise NotImplementedError  # your code here\\n",
  "check": "from distillkit.exercises import check_f\\n\\ncheck_f(f)\\n"}``; the check prints
  "Not done yet" until the student has written the function;
* experimental: a code cell ``# Exercise LABEL: your experiment here``;
* conceptual (and derivation): a markdown cell ``Exercise LABEL: write your answer here``.

Every other cell is kept as it is (code cells with their outputs cleared, so the notebook
starts fresh), and a code cell tagged ``solution`` outside a solution is an error, so that a
misplaced fence can never leak a solution.
Usage: ``python tools/export_student.py [--out student] [chapters/...ipynb ...]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = r"(?:`{3,}|:{3,})"
SOLUTION = re.compile(rf"^{FENCE}\{{solution-start\}}\s+(\S+)[^\n]*\n(?::[^\n]*\n)*{FENCE}[^\n]*$"
                      rf"|^{FENCE}\{{solution-end\}}[^\n]*\n{FENCE}[^\n]*$", re.MULTILINE)
EXERCISE = re.compile(rf"^{FENCE}\{{exercise\}}[^\n]*\n((?::[^\n]*\n)*)\s*(?:\*\((\w+)\)\*)?", re.MULTILINE)
KEY = "distillkit"  # cell metadata: {"stub": ..., "check": ...} on a solution's code cell


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def split_markdown(cell):
    """Split a markdown cell at solution-start / solution-end fences into pieces
    ``(kind, text)`` with kind in {"text", "start", "end"}; "start" carries the label."""
    text = _source(cell)
    pieces = []
    pos = 0
    for match in SOLUTION.finditer(text):
        if match.start() > pos:
            pieces.append(("text", text[pos:match.start()]))
        pieces.append(("start", match.group(1)) if match.group(1) else ("end", None))
        pos = match.end()
    if pos < len(text):
        pieces.append(("text", text[pos:]))
    return pieces


def exercise_kinds(nb: dict) -> dict[str, str]:
    """``{label: kind}`` for every ``{exercise}`` of the notebook; the kind is the word in the
    ``*(kind)*`` that opens the exercise's text ("" when there is none)."""
    kinds = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for match in EXERCISE.finditer(_source(cell)):
            label = re.search(r"^:label:\s*(\S+)", match.group(1), re.MULTILINE)
            if label:
                kinds[label.group(1)] = (match.group(2) or "").lower()
    return kinds


class _Ids:
    """Unique cell ids (nbformat 4.5): kept where possible, derived otherwise."""

    def __init__(self):
        self.used = set()

    def __call__(self, wanted: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "-", wanted)[:60] or "cell"
        new, n = base, 1
        while new in self.used:
            n += 1
            new = f"{base}-{n}"
        self.used.add(new)
        return new


def solution_segments(nb: dict):
    """Walk a chapter in order, telling what lies outside the solutions from the solutions.

    Yields ``("cell", cell)`` for every cell outside a solution: code cells and unfenced
    markdown cells as they are (not copied), and, for a markdown cell with fences, a copy of
    it holding only its text outside the fences (one per stretch of such text). Yields
    ``("solution", label, cells)`` for every solution, where it stood: its code cells as they
    are and the prose between its fences as copies of the markdown cells holding it.
    Raises ValueError for a nested, unclosed or unopened fence and for a code cell tagged
    ``solution`` outside a fence. The student export and the PDF's appendix both read
    chapters through this one walk.
    """
    label, inside = None, []

    def part(cell, text):
        piece = copy.deepcopy(cell)
        piece["source"] = _lines(text.strip("\n") + "\n")
        return piece

    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            if label is not None:
                inside.append(cell)
            elif "solution" in cell.get("metadata", {}).get("tags", []):
                raise ValueError(f"a code cell tagged 'solution' is outside any solution fence: {_source(cell)[:60]!r}")
            else:
                yield "cell", cell
            continue
        pieces = split_markdown(cell)
        if len(pieces) == 1 and pieces[0][0] == "text":  # no fence
            if label is None:
                yield "cell", cell
            elif pieces[0][1].strip():
                inside.append(part(cell, pieces[0][1]))
            continue
        outside = []
        for kind, value in pieces:
            if kind == "start":
                if label is not None:
                    raise ValueError(f"nested solution {value} inside {label}")
                if "".join(outside).strip():
                    yield "cell", part(cell, "".join(outside))
                outside, label, inside = [], value, []
            elif kind == "end":
                if label is None:
                    raise ValueError("solution-end without solution-start")
                yield "solution", label, inside
                label = None
            elif label is None:
                outside.append(value)
            elif value.strip():
                inside.append(part(cell, value))
        if "".join(outside).strip():
            yield "cell", part(cell, "".join(outside))
    if label is not None:
        raise ValueError(f"solution {label} is never closed")


def student_version(nb: dict) -> tuple[dict, int]:
    """The student notebook of ``nb`` and the number of solutions removed."""
    kinds = exercise_kinds(nb)
    ids, has_ids = _Ids(), any("id" in c for c in nb["cells"])
    out = copy.deepcopy(nb)
    cells, removed = [], 0

    def add(cell, wanted_id):
        if has_ids:
            cell["id"] = ids(cell.get("id") or wanted_id)
        cells.append(cell)

    for segment in solution_segments(nb):
        if segment[0] == "cell":
            cell = copy.deepcopy(segment[1])
            if cell["cell_type"] == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
            add(cell, "cell")
        else:
            _, label, inside = segment
            code_cells = [c for c in inside if c["cell_type"] == "code"]
            for placeholder in _placeholders(label, kinds.get(label, ""), code_cells):
                add(placeholder, f"student-{label}")
            removed += 1
    out["cells"] = cells
    out["metadata"].pop("widgets", None)
    return out, removed


def _placeholders(label: str, kind: str, code_cells: list) -> list[dict]:
    """The cells that stand in for the solution of exercise ``label``."""
    def meta():
        return {"tags": ["student"], KEY: {"exercise": label, "kind": kind}}

    def code(text):
        return {"cell_type": "code", "execution_count": None, "metadata": meta(), "outputs": [], "source": _lines(text)}

    link = next((c["metadata"][KEY] for c in code_cells if isinstance(c.get("metadata", {}).get(KEY), dict)), None)
    if kind == "coding" or (link and kind not in ("conceptual", "derivation", "experimental")):
        text = f"# Exercise {label}: your code here\n"
        if link:
            text += link.get("stub", "").rstrip("\n") + "\n\n\n" + link.get("check", "").rstrip("\n") + "\n"
        return [code(text)]
    if kind == "experimental" or (not kind and code_cells):
        return [code(f"# Exercise {label}: your experiment here\n"
                     "# (then write what you observe in a markdown cell below)\n")]
    return [{"cell_type": "markdown", "metadata": meta(),
             "source": _lines(f"*Exercise {label}: write your answer here (double-click to edit this cell).*\n")}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "student")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                                         if ".ipynb_checkpoints" not in p.parts)
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        student, removed = student_version(nb)
        chapters = (ROOT / "chapters").resolve()
        rel = path.resolve().relative_to(chapters) if chapters in path.resolve().parents else path.name
        target = args.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        coding = [label for label, kind in exercise_kinds(nb).items() if kind == "coding"]
        checked = [c["metadata"][KEY]["exercise"] for c in student["cells"]
                   if KEY in c["metadata"] and "from distillkit.exercises" in _source(c)]
        missing = [label for label in coding if label not in checked]
        note = f"; coding exercise(s) without a check: {', '.join(missing)}" if missing else ""
        print(f"{target}: {removed} solution(s) removed, {len(checked)} with a check{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
