"""The student export removes every solution, and only solutions; what it puts in their place
runs, and every coding exercise gets its stub and its check.

The solutions are found here with a parser of their own (line by line), independent of the
exporter's. Executing the exported notebooks takes minutes per chapter on a laptop CPU: by
default the template and the two cheapest chapters run; ``DISTILLKIT_STUDENT_ALL=1`` runs all.
"""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

import distillkit.exercises

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from export_student import student_version

NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CHEAP = ["99_back/template.ipynb", "05_theory/01_multi_index.ipynb", "03_distillation/01_matching.ipynb"]
START = re.compile(r"^(?:`{3,}|:{3,})\{solution-start\}\s+(\S+)")
END = re.compile(r"^(?:`{3,}|:{3,})\{solution-end\}")


def _text(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def solutions(nb):
    """``{label: {"code": [cells], "prose": [lines], "kind": str, "link": dict}}``, the markdown
    lines outside solutions and the markdown cells with no fence outside solutions, from a
    line-by-line reading of the notebook."""
    found, outside, plain, label, header = {}, [], [], None, False
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            if label:
                found[label]["code"].append(cell)
            continue
        if label is None and "{solution-" not in _text(cell):
            plain.append(cell)
        for line in _text(cell).splitlines():
            start, end = START.match(line), END.match(line)
            if start:
                label, header = start.group(1), True
                found[label] = {"code": [], "prose": []}
            elif end:
                label, header = None, True
            elif header:  # options and the closing fence of a solution-start / solution-end
                header = not re.match(r"^(?:`{3,}|:{3,})\s*$", line)
            elif label:
                found[label]["prose"].append(line)
            else:
                outside.append(line)
    kinds = dict(re.findall(r":label:\s*(\S+)\s*\n\*\((\w+)\)\*", "\n".join(_text(c) for c in nb["cells"])))
    for lab, sol in found.items():
        sol["kind"] = kinds.get(lab, "")
        sol["link"] = next((c["metadata"]["distillkit"] for c in sol["code"] if "distillkit" in c["metadata"]), None)
    return found, outside, plain


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_leaks(path):
    nb = _load(path)
    student, removed = student_version(nb)
    found, outside, _ = solutions(nb)
    assert removed == len(found) >= 3
    texts = [_text(c) for c in student["cells"]]
    assert not any("{solution-start}" in t or "{solution-end}" in t for t in texts)
    assert not any("solution" in c["metadata"].get("tags", []) for c in student["cells"])
    # no solution cell survives, and no line that only a solution has (stubs and checks excepted)
    solution_lines = set()
    for sol in found.values():
        for cell in sol["code"]:
            assert not any(_text(cell).strip() in t for t in texts), f"a solution cell of {path.name} leaked"
            solution_lines |= {line.strip() for line in _text(cell).splitlines()}
        solution_lines |= {line.strip() for line in sol["prose"]}
        if sol["link"]:
            public_link = (sol["link"]["stub"] + sol["link"]["check"]).splitlines()
            solution_lines -= {line.strip() for line in public_link}
    in_solution = [id(c) for s in found.values() for c in s["code"]]
    non_solution = [c for c in nb["cells"] if c["cell_type"] == "code" and id(c) not in in_solution]
    shared = {line.strip() for c in non_solution for line in _text(c).splitlines()} | {line.strip() for line in outside}
    distinctive = {line for line in solution_lines if len(line) >= 12 and line not in shared}
    student_lines = {line.strip() for t in texts for line in t.splitlines()}
    assert not distinctive & student_lines, f"solution lines leaked: {sorted(distinctive & student_lines)[:3]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_everything_else_stays(path):
    nb = _load(path)
    student, _ = student_version(nb)
    nbformat.validate(nbformat.from_dict(student))
    found, outside, plain = solutions(nb)
    in_solution = [id(c) for s in found.values() for c in s["code"]]
    original = [c for c in nb["cells"] if c["cell_type"] == "code" and id(c) not in in_solution]
    kept = [c for c in student["cells"] if c["cell_type"] == "code" and "student" not in c["metadata"].get("tags", [])]
    assert [_text(c) for c in kept] == [_text(c) for c in original]
    assert [c["metadata"] for c in kept] == [c["metadata"] for c in original]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in kept)
    # markdown without a fence stays verbatim; the rest keeps every line outside solutions
    student_md = [c for c in student["cells"] if c["cell_type"] == "markdown"
                  and "student" not in c["metadata"].get("tags", [])]
    for cell in plain:
        assert any(_text(cell) == _text(s) and cell["metadata"] == s["metadata"] and cell.get("id") == s.get("id")
                   for s in student_md)
    student_md_lines = [line for c in student_md for line in _text(c).splitlines()]
    assert [line for line in outside if line.strip()] == [line for line in student_md_lines if line.strip()]
    assert sum(_text(c).count("{exercise}") for c in student["cells"]) == sum(
        _text(c).count("{exercise}") for c in nb["cells"])
    assert {k: v for k, v in nb["metadata"].items() if k != "widgets"} == student["metadata"]
    assert len({c["id"] for c in student["cells"]}) == len(student["cells"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_exercise_gets_its_placeholder(path):
    nb = _load(path)
    student, _ = student_version(nb)
    found, _, _ = solutions(nb)
    for label, sol in found.items():
        cells = [c for c in student["cells"] if c["metadata"].get("distillkit", {}).get("exercise") == label]
        assert len(cells) == 1 and cells[0]["metadata"]["tags"] == ["student"], label
        text = _text(cells[0])
        if sol["kind"] == "coding":
            assert cells[0]["cell_type"] == "code" and text.startswith(f"# Exercise {label}: your code here\n")
            assert sol["link"], f"{label} is a coding exercise without a check: add 'distillkit' metadata"
            assert sol["link"]["stub"] in text and sol["link"]["check"] in text
            ast.parse(text)
        elif sol["kind"] == "experimental":
            assert cells[0]["cell_type"] == "code" and text.startswith(f"# Exercise {label}: your experiment here")
        else:
            assert cells[0]["cell_type"] == "markdown" and f"Exercise {label}: write your answer here" in text


def _links():
    return {label: sol for path in NOTEBOOKS for label, sol in solutions(_load(path))[0].items() if sol["link"]}


def test_every_check_serves_one_exercise_and_every_link_names_a_check():
    links = _links()
    assert set(distillkit.exercises.CHECKS) == set(links)
    for label, sol in links.items():
        check = distillkit.exercises.CHECKS[label]
        stub = ast.parse(sol["link"]["stub"]).body
        assert len(stub) == 1 and stub[0].name == check.function, label
        assert "raise NotImplementedError" in sol["link"]["stub"]
        assert sol["link"]["check"] == (f"from distillkit.exercises import {check.__name__}\n\n"
                                        f"{check.__name__}({check.function})\n")
        assert check.__name__ in distillkit.exercises.__all__


def test_handmade_notebook():
    def md(s):
        return {"cell_type": "markdown", "id": "m", "metadata": {}, "source": s}

    def code(s, tags=(), meta=None):
        return {"cell_type": "code", "id": "c", "execution_count": 1, "metadata": {"tags": list(tags), **(meta or {})},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}], "source": s}

    link = {"distillkit": {"stub": "def f(x):\n    raise NotImplementedError  # your code here\n",
                           "check": "from distillkit.exercises import check_f\n\ncheck_f(f)\n"}}
    nb = {"metadata": {"widgets": {}}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        md("Intro\n\n```{exercise}\n:label: ex-a\n*(conceptual)* Do it.\n```\n\n```{solution-start} ex-a\n"
           ":class: dropdown\n```\nSecret prose.\n```{solution-end}\n```\n"),
        code("setup()"),
        md("```{exercise}\n:label: ex-b\n*(coding)* Code it.\n```\n\n```{solution-start} ex-b\n:class: dropdown\n```"),
        code("def f(x):\n    return secret_code(x)", tags=["solution"], meta=link),
        md("```{solution-end}\n```\n\nAfter."),
        md(":::{exercise}\n:label: ex-c\n*(experimental)* Try it.\n:::\n\n:::{solution-start} ex-c\n:::\n"),
        code("secret_experiment()", tags=["solution"]),
        md(":::{solution-end}\n:::\n"),
        md("Unchanged\n\n"),
    ]}
    student, removed = student_version(nb)
    texts = [_text(c) for c in student["cells"]]
    assert removed == 3
    assert not any("Secret" in t or "secret_" in t for t in texts)
    assert "setup()" in texts and "Unchanged\n\n" in texts  # a cell without a fence is kept byte for byte
    assert any(t.startswith("# Exercise ex-b: your code here\ndef f(x):\n    raise NotImplementedError") and
               t.endswith("check_f(f)\n") for t in texts)
    assert any("Exercise ex-a: write your answer here" in t for t in texts)
    assert any(t.startswith("# Exercise ex-c: your experiment here") for t in texts)
    assert texts.index("After.\n") == texts.index("setup()") + 3  # statement, placeholder, the rest
    assert "widgets" not in student["metadata"]
    assert len({c["id"] for c in student["cells"]}) == len(student["cells"])
    nbformat.validate(nbformat.from_dict(student))
    # a solution-tagged cell outside a fence would leak: the export refuses
    with pytest.raises(ValueError, match="outside any solution"):
        student_version({**nb, "cells": [code("leak()", tags=["solution"])]})
    with pytest.raises(ValueError, match="never closed"):
        student_version({**nb, "cells": nb["cells"][:4]})


def test_export_command_writes_files(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "export_student.py"), "--out", str(tmp_path),
                             str(ROOT / "chapters" / "99_back" / "template.ipynb")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "99_back" / "template.ipynb"
    assert out.exists() and "3 solution(s) removed, 1 with a check" in result.stdout
    assert _load(out) == student_version(_load(ROOT / "chapters" / "99_back" / "template.ipynb"))[0]


def _to_run():
    if os.environ.get("DISTILLKIT_STUDENT_ALL") == "1":
        return NOTEBOOKS
    return [ROOT / "chapters" / rel for rel in CHEAP if (ROOT / "chapters" / rel).exists()]


@pytest.mark.slow
@pytest.mark.parametrize("path", _to_run(), ids=lambda p: p.name)
def test_exported_notebook_runs_and_checks_fail_gracefully(path, tmp_path):
    from nbclient import NotebookClient

    student, _ = student_version(_load(path))
    folder = tmp_path / path.parent.name
    folder.mkdir()
    (folder / path.name).write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    nb = nbformat.read(folder / path.name, as_version=4)
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    linked = [label for label, sol in solutions(_load(path))[0].items() if sol["link"]]
    checks = [c for c in nb.cells if c.metadata.get("distillkit", {}).get("exercise") in linked]
    assert len(checks) == len(linked) >= 1
    for cell in checks:
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert printed.startswith("Not done yet: "), printed
        assert not [o for o in cell.outputs if o.output_type == "execute_result"]  # the result shows nothing more


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_has_three_kinds_of_exercise_each_with_a_solution(path):
    nb = _load(path)
    found, _, _ = solutions(nb)
    text = "\n".join(_text(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    labels = re.findall(r"\{exercise\}\n:label:\s*(\S+)", text)
    assert len(labels) >= 3, f"{path.name}: {len(labels)} exercises, at least 3 expected"
    assert set(labels) <= set(found), f"{path.name}: exercises without a solution: {set(labels) - set(found)}"
    pen_and_paper = {"derivation": "conceptual"}  # a derivation is a conceptual exercise on paper
    kinds = {pen_and_paper.get(found[label]["kind"], found[label]["kind"]) for label in labels}
    assert {"conceptual", "coding", "experimental"} <= kinds, f"{path.name}: exercise kinds {sorted(kinds)}"
