"""The PDF's source preparation (tools/pdf_book.py), without TeX: every solution leaves its
chapter and lands in the appendix, widgets become printable frames, and the generated
config carries the pdflatex recipe. The LaTeX build itself is `./book.sh pdf`."""

import json
import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
pdf_book = pytest.importorskip("pdf_book")
from export_student import student_version  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _code(nb):
    return [("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("pdf_src")
    info = pdf_book.prepare(ROOT, out)
    return out, info


def test_solutions_move_to_the_appendix_and_nowhere_else(prepared):
    out, info = prepared
    appendix = json.loads((out / (pdf_book.APPENDIX + ".ipynb")).read_text(encoding="utf-8"))
    appendix_code = "\n".join(_code(appendix))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    n_total = 0
    for docname in pdf_book.toc_docnames(toc):
        src = pdf_book.find_source(ROOT, docname)
        if src.suffix != ".ipynb":
            continue
        nb = json.loads(src.read_text(encoding="utf-8"))
        student, n_solutions = student_version(nb)
        n_total += n_solutions
        copy = json.loads((out / src.relative_to(ROOT)).read_text(encoding="utf-8"))
        copy_code = set(_code(copy))
        kept_code = set(_code(student))
        for code in _code(nb):
            if code in kept_code:
                continue  # a cell the student export keeps: not a solution
            assert code not in copy_code, f"a solution of {docname} stayed in its chapter"
            assert code in appendix_code, f"a solution of {docname} is missing from the appendix"
    assert n_total >= 3 * 11  # every chapter has at least three exercises
    assert len(info["titles"]) >= 11


def test_widgets_become_frames_and_config_is_the_pdflatex_recipe(prepared):
    out, _ = prepared
    for path in (out / "chapters").rglob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                assert WIDGET_VIEW not in output.get("data", {}), f"{path}: a widget left for LaTeX"
    config = yaml.safe_load((out / "_config.yml").read_text(encoding="utf-8"))
    latex = config["latex"]
    assert latex["latex_engine"] == "pdflatex" and latex["use_jupyterbook_latex"] is False
    assert latex["latex_documents"]["targetname"] == "book.tex"
    toc_text = (out / "_toc.yml").read_text(encoding="utf-8")
    assert "bibliography" not in toc_text  # the bibliography goes to the end of the appendix


def test_appendix_must_not_be_in_the_books_toc(tmp_path):
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "_toc.yml").write_text(f"format: jb-book\nroot: {pdf_book.APPENDIX}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="generated for the PDF"):
        pdf_book.prepare(tmp_path, tmp_path / "out")
