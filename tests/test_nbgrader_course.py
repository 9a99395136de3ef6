"""A whole nbgrader course cycle on two cheap chapters (the template and the theory chapter):
generate the assignment, submit three notebooks (the reference solution, a typical wrong
answer, the untouched stub) and one that loops for ever, autograde, read the scores from
nbgrader's gradebook, write the feedback.

nbgrader itself runs every step (its command line, in the course folder); the test only
writes the submissions and reads the results. No network is needed.
"""

import html
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from nbgrader_course import CHECK_POINTS, HIDDEN_POINTS, points, source_version, write_course  # noqa: E402

nbgrader = pytest.importorskip("nbgrader")

CHAPTERS = {"template": ROOT / "chapters" / "99_back" / "template.ipynb",
            "multi_index": ROOT / "chapters" / "05_theory" / "01_multi_index.ipynb"}
# a typical mistake per chapter, the hint its check gives, and the score designed for it:
# the template's answer forgets bincount's minlength (the check fails, the hidden test on a
# selection with every class passes); the theory's loss forgets the 1/2 (both tests fail)
WRONG = {
    "template": ("def count_per_class(indices, y):\n    return torch.bincount(y[indices])\n",
                 "give torch.bincount a minlength", HIDDEN_POINTS),
    "multi_index": ("def two_layer_loss(net, x, y):\n"
                    "    return ((torch.relu(x @ net.W.T + net.b) @ net.a - y) ** 2).mean()\n",
                    "the loss has 1/(2n): a factor 1/2 in front of the mean", 0),
}
MARKERS = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def _text(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _load(path):
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))


def _strings(node):
    """Every string anywhere in a JSON document (sources, outputs, metadata)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _secret_lines(source_nb):
    """Lines only the solutions and hidden tests of a source notebook have (12 characters or more)."""
    inside, outside = set(), set()
    for cell in source_nb["cells"]:
        hidden = False
        for line in _text(cell).splitlines():
            marker = MARKERS.match(line)
            if marker:
                hidden = marker.group(1) == "BEGIN"
            elif line.strip():
                (inside if hidden else outside).add(line.strip())
    return {line for line in inside - outside if len(line) >= 12}


def _nbgrader(course, *args, timeout=900):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                            timeout=timeout, check=False, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _submit(course, student, name, nb):
    target = course / "submitted" / student / name / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _replace(release, grade_id, text):
    nb = json.loads(json.dumps(release))
    cells = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(cells) == 1, grade_id
    cells[0]["source"] = text
    return nb


def _reference(release, source):
    """The release notebook with every answer cell filled in from the source (markers dropped)."""
    nb = json.loads(json.dumps(release))
    answers = {c["metadata"]["nbgrader"]["grade_id"]: c for c in source["cells"]
               if c["metadata"].get("nbgrader", {}).get("solution")}
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = "".join(line for line in _text(answers[meta["grade_id"]]).splitlines(keepends=True)
                                     if not MARKERS.match(line))
    return nb


def _coding_id(source):
    return next(c["metadata"]["nbgrader"]["grade_id"] for c in source["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id", "").endswith("-solution"))


def test_source_version_marks_every_exercise():
    for name, path in CHAPTERS.items():
        source = source_version(_load(path))
        p = points(source)
        assert p["autograded"][1] == CHECK_POINTS + HIDDEN_POINTS and p["manual"][0] >= 2, (name, p)
        ids = [c["metadata"]["nbgrader"]["grade_id"] for c in source["cells"] if "nbgrader" in c["metadata"]]
        assert len(ids) == len(set(ids))
        assert all(c.get("outputs", []) == [] for c in source["cells"])


@pytest.mark.slow
def test_a_whole_course_cycle(tmp_path):
    course = tmp_path / "course"
    write_course(course, CHAPTERS.values())
    releases, sources, secrets = {}, {}, {}
    for name in CHAPTERS:
        _nbgrader(course, "generate_assignment", name, "--force")
        releases[name] = _load(course / "release" / name / f"{name}.ipynb")
        sources[name] = _load(course / "source" / name / f"{name}.ipynb")
        secrets[name] = _secret_lines(sources[name])
        assert len(secrets[name]) >= 5
        released = {line.strip() for s in _strings(releases[name]) for line in s.splitlines()}
        assert not secrets[name] & released, f"solution text leaked into {name}: {sorted(secrets[name] & released)[:3]}"
        assert "BEGIN SOLUTION" not in json.dumps(releases[name]) and "BEGIN HIDDEN" not in json.dumps(releases[name])

    for name in CHAPTERS:
        release, coding = releases[name], _coding_id(sources[name])
        _submit(course, "reference", name, _reference(release, sources[name]))
        _submit(course, "wrong", name, _replace(release, coding, WRONG[name][0]))
        _submit(course, "stub", name, release)
    start = time.monotonic()
    for name in CHAPTERS:
        _nbgrader(course, "autograde", name, "--force")
    seconds = time.monotonic() - start
    print(f"autograde of 3 submissions x {len(CHAPTERS)} chapters: {seconds:.0f} s")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name in CHAPTERS:
            auto = CHECK_POINTS + HIDDEN_POINTS
            ref, wrong, stub = (gb.find_submission(name, s) for s in ("reference", "wrong", "stub"))
            assert ref.max_score == points(sources[name])["autograded"][1] + points(sources[name])["manual"][1]
            assert ref.code_score == auto and ref.needs_manual_grade, name  # answers wait for the grader
            assert wrong.code_score == WRONG[name][2] < auto, name
            assert stub.score == 0 and not stub.needs_manual_grade, name  # blank answers score zero
            check = gb.find_grade(f"{_coding_id(sources[name])[:-len('-solution')]}-check", name, name, "wrong")
            assert check.auto_score == 0

    for name in CHAPTERS:
        _nbgrader(course, "generate_feedback", name, "--student", "wrong", "--force")
        page = (course / "feedback" / "wrong" / name / f"{name}.html").read_text(encoding="utf-8")
        assert html.escape(WRONG[name][1], quote=False) in page or WRONG[name][1] in page, name
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        lines = {line.strip() for line in text.splitlines()}
        solution_only = secrets[name] - {line.strip() for line in WRONG[name][0].splitlines()}
        hidden = {line.strip() for line in _text(next(c for c in sources[name]["cells"] if c["metadata"].get(
            "nbgrader", {}).get("grade_id", "").endswith("-hidden"))).splitlines()}
        assert not (solution_only - hidden) & lines, sorted((solution_only - hidden) & lines)[:3]


@pytest.mark.slow
def test_an_infinite_loop_is_stopped_and_scored(tmp_path):
    course = tmp_path / "course"
    write_course(course, [CHAPTERS["template"]])
    _nbgrader(course, "generate_assignment", "template", "--force")
    release = _load(course / "release" / "template" / "template.ipynb")
    source = _load(course / "source" / "template" / "template.ipynb")
    _submit(course, "looping", "template", _replace(release, _coding_id(source), "while True:\n    pass\n"))
    start = time.monotonic()
    _nbgrader(course, "autograde", "template", "--force", "--Execute.timeout=20", timeout=600)
    assert time.monotonic() - start < 600
    graded = _load(course / "autograded" / "looping" / "template" / "template.ipynb")
    loop = next(c for c in graded["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == _coding_id(source))
    assert any(o["output_type"] == "error" for o in loop["outputs"]), loop["outputs"]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission("template", "looping").code_score == 0
