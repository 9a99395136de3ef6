"""Guards for portable notebook tests (see distillkit.claims).

Numbers that come out of training differ between CPUs, kernels and thread counts, so a
chapter shows them in cells whose output nbval does not compare, and states what it
concludes from them as checked claims in cells whose output nbval does compare. These
guards make that discipline hold:

* every chapter states at least three claims, and no stored claim has failed;
* an output is excluded from comparison only with a stated reason (a tag beside
  ``nbval-ignore-output``): ``measured`` (numbers from training; a cell stating claims
  must follow within the next three compared code cells), ``timing`` or ``environment``
  (versions, devices, paths);
* the guards themselves catch a broken library: the small notebook in tests/notebooks
  fails its nbval test on a claim when herding is deliberately broken.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
REASONS = {"measured", "timing", "environment"}
LOOKAHEAD = 3
DEMO = ROOT / "tests" / "notebooks" / "claims_demo.ipynb"


def _cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _text(cell):
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out["text"]))
        else:
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def _claim_lines(cell):
    return [line for line in _text(cell).splitlines() if line.startswith("✓ ")]


def claims_report(path):
    """(strict cells, excluded cells, claims) of one notebook."""
    cells = _cells(path)
    excluded = [c for c in cells if _tags(c) & IGNORE_TAGS]
    strict = [c for c in cells if not _tags(c) & IGNORE_TAGS]
    claims = sum(len(_claim_lines(c)) for c in strict)
    return len(strict), len(excluded), claims


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT / "chapters")))
def test_no_failed_claim_is_stored(path):
    for i, cell in enumerate(_cells(path)):
        bad = [line for line in _text(cell).splitlines() if line.startswith("✗ ")]
        assert not bad, f"{path.name}, code cell {i + 1}: a stored claim failed: {bad[0]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT / "chapters")))
def test_every_excluded_output_has_a_reason(path):
    cells = _cells(path)
    for i, cell in enumerate(cells):
        tags = _tags(cell)
        if not tags & IGNORE_TAGS:
            continue
        reasons = tags & REASONS
        assert reasons, (f"{path.name}, code cell {i + 1}: output excluded from comparison without a reason; "
                         f"add one of the tags {sorted(REASONS)}")
        if "measured" in reasons:
            # other measured cells may come between (a table, then its figure, then the claims)
            following = [c for c in cells[i + 1:] if not _tags(c) & IGNORE_TAGS][:LOOKAHEAD]
            assert any(_claim_lines(c) for c in following), (
                f"{path.name}, code cell {i + 1}: measured output with no checked claim in the next "
                f"{LOOKAHEAD} compared code cells")
        assert not _claim_lines(cell), f"{path.name}, code cell {i + 1}: claims in an excluded cell are not checked"


@pytest.mark.parametrize("path", [p for p in CHAPTERS if "99_back" not in p.parts],
                         ids=lambda p: str(p.relative_to(ROOT / "chapters")))
def test_chapter_states_at_least_three_claims(path):
    strict, excluded, claims = claims_report(path)
    assert claims >= 3, f"{path.name}: {claims} checked claims (at least 3 needed)"


def test_guard_counts_claims_and_reasons(tmp_path):
    """The guards above can fail: a hand-made notebook that breaks each rule."""
    def cell(source, outputs=(), tags=()):
        return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}, "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": t} for t in outputs]}
    nb = {"cells": [cell("run()", ["acc 71.3\n"], ["nbval-ignore-output"]),
                    cell("claim(...)", ["✓ a holds\n", "✗ b fails\n"])], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    with pytest.raises(AssertionError, match="without a reason"):
        test_every_excluded_output_has_a_reason(path)
    with pytest.raises(AssertionError, match="a stored claim failed"):
        test_no_failed_claim_is_stored(path)
    with pytest.raises(AssertionError, match="1 checked claims"):
        test_chapter_states_at_least_three_claims(path)
    nb["cells"][0]["metadata"]["tags"].append("measured")
    nb["cells"][1]["outputs"] = []
    path.write_text(json.dumps(nb), encoding="utf-8")
    with pytest.raises(AssertionError, match="no checked claim"):
        test_every_excluded_output_has_a_reason(path)


def _run_demo(tmp_path, broken: bool):
    env = dict(os.environ)
    if broken:
        patch = tmp_path / "patch"
        patch.mkdir()
        # herding "returns the first indices": every class keeps its first `budget` examples
        (patch / "sitecustomize.py").write_text(
            "import torch\n"
            "import distillkit.coresets as cs\n"
            "from distillkit.coresets import _base\n"
            "def herding(x, y, budget, **kw):\n"
            "    idx = torch.cat([torch.nonzero(y == c).flatten()[:budget // int(y.max() + 1)]\n"
            "                     for c in range(int(y.max()) + 1)])\n"
            "    return _base.make_selection(idx, method='herding')\n"
            "cs.herding = herding\n"
            "_base.METHODS['herding'] = herding\n", encoding="utf-8")
        env["PYTHONPATH"] = f"{patch}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
                           str(DEMO)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_broken_method_fails_the_notebook_test_on_a_claim(tmp_path):
    ok = _run_demo(tmp_path, broken=False)
    assert ok.returncode == 0, ok.stdout[-3000:]
    broken = _run_demo(tmp_path, broken=True)
    assert broken.returncode != 0, "the demo notebook passed with herding broken"
    assert "✗ herding" in broken.stdout or "ClaimFailed" in broken.stdout, broken.stdout[-3000:]
