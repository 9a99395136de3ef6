"""Build the book as one PDF, with the exercise solutions in an appendix.

On the website a solution is a collapsed box right after its exercise. On paper that does
not work, so the PDF is built from a prepared copy of the sources:

1. the pages listed in ``_toc.yml`` (plus ``references.bib``, ``bib/`` and the local Sphinx
   extension) are copied into ``_build/pdf_src``;
2. in every chapter notebook each solution, from ``{solution-start} LABEL`` to
   ``{solution-end}``, is cut out and replaced by a one-line pointer to the appendix. The
   solutions are found by ``solution_segments`` from ``tools/export_student.py``, the same
   walk that makes the student notebooks;
3. the solutions go, with their markdown, code and stored outputs (figures included), into
   an appendix notebook "Solutions to the exercises": one section per chapter and one
   ``{solution}`` box per exercise, whose title refers to the exercise;
4. interactive explorers (ipywidgets) cannot work on paper: their output is replaced by a
   few of the frames stored in the notebook's widget state, with a caption;
5. a ``_config.yml`` for the PDF is written from the book's (its ``latex`` recipe: pdflatex,
   no sphinx-jupyterbook-latex, ``book.tex``; plus the appendix via ``latex_appendices``; page
   numbers after cross-references; ``newunicodechar`` declarations for the non-ASCII
   characters in the sources) and ``jupyter-book build --builder pdflatex`` runs there;
6. the PDF is copied to ``_build/latex/book.pdf`` and checked with ``pdftotext``: every
   chapter, the appendix and the bibliography are there, and every solution's code is in
   the appendix and nowhere else.

Usage: ``python tools/pdf_book.py [--prepare-only] [--no-check]`` (``./book.sh pdf`` runs
it). Needs pdflatex and latexmk (see README); the check needs ``pdftotext`` (poppler-utils).
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import json
import pathlib
import re
import shutil
import subprocess
import sys
import time
import unicodedata

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from export_student import _Ids, _source, solution_segments  # noqa: E402  (the one place that knows the fences)

APPENDIX = "chapters/99_back/solutions"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Unicode characters pdflatex does not know by itself (or knows only in text mode), and what
# to print for them. \ensuremath makes the math ones work in text and in $...$ alike.
UNICODE_LATEX = {
    "±": r"\ensuremath{\pm}", "∓": r"\ensuremath{\mp}", "×": r"\ensuremath{\times}",
    "÷": r"\ensuremath{\div}", "−": r"\ensuremath{-}", "·": r"\ensuremath{\cdot}",
    "°": r"\ensuremath{^\circ}", "≤": r"\ensuremath{\leq}", "≥": r"\ensuremath{\geq}",
    "≠": r"\ensuremath{\neq}", "≈": r"\ensuremath{\approx}", "∼": r"\ensuremath{\sim}",
    "≡": r"\ensuremath{\equiv}", "≪": r"\ensuremath{\ll}", "≫": r"\ensuremath{\gg}",
    "∝": r"\ensuremath{\propto}", "→": r"\ensuremath{\rightarrow}", "←": r"\ensuremath{\leftarrow}",
    "↔": r"\ensuremath{\leftrightarrow}", "⇒": r"\ensuremath{\Rightarrow}", "⇐": r"\ensuremath{\Leftarrow}",
    "⇔": r"\ensuremath{\Leftrightarrow}", "↑": r"\ensuremath{\uparrow}", "↓": r"\ensuremath{\downarrow}",
    "↦": r"\ensuremath{\mapsto}", "∞": r"\ensuremath{\infty}", "∑": r"\ensuremath{\sum}",
    "∏": r"\ensuremath{\prod}", "∫": r"\ensuremath{\int}", "√": r"\ensuremath{\surd}",
    "∂": r"\ensuremath{\partial}", "∇": r"\ensuremath{\nabla}", "∈": r"\ensuremath{\in}",
    "∉": r"\ensuremath{\notin}", "⊂": r"\ensuremath{\subset}", "⊆": r"\ensuremath{\subseteq}",
    "∪": r"\ensuremath{\cup}", "∩": r"\ensuremath{\cap}", "∀": r"\ensuremath{\forall}",
    "∃": r"\ensuremath{\exists}", "∅": r"\ensuremath{\emptyset}", "∘": r"\ensuremath{\circ}",
    "⊤": r"\ensuremath{\top}", "ᵀ": r"\ensuremath{^{\top}}", "‖": r"\ensuremath{\|}",
    "⟨": r"\ensuremath{\langle}", "⟩": r"\ensuremath{\rangle}", "′": r"\ensuremath{'}",
    "★": r"\ensuremath{\star}", "✓": r"\ensuremath{\checkmark}", "✔": r"\ensuremath{\checkmark}",
    "✗": r"\ensuremath{\times}", "✘": r"\ensuremath{\times}", "µ": r"\ensuremath{\mu}",
    "²": r"\ensuremath{^2}", "³": r"\ensuremath{^3}", "¹": r"\ensuremath{^1}",
    "½": r"\ensuremath{\tfrac12}", "¼": r"\ensuremath{\tfrac14}", "¾": r"\ensuremath{\tfrac34}",
    "…": r"\ensuremath{\ldots}", "⋯": r"\ensuremath{\cdots}", "•": r"\textbullet{}",
    "\u00a0": "~", "\u2009": r"\,", "\u202f": r"\,", "\u200b": "{}",
}
GREEK = "αβγδεζηθικλμνξπρστυφχψω"
GREEK_NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
               "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
               "omega"]
UNICODE_LATEX.update({c: rf"\ensuremath{{\{n}}}" for c, n in zip(GREEK, GREEK_NAMES)})
UNICODE_LATEX.update({c: rf"\ensuremath{{\{n}}}" for c, n in zip(
    "ΓΔΘΛΞΠΣΦΨΩ", ["Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"])})
# Known to pdflatex already (inputenc utf8 + T1 + textcomp): Latin-1, Latin Extended-A, and these.
PDFLATEX_KNOWN = set("–—‘’“”‚„†‡‰€™‹›") | {chr(c) for c in range(0xA1, 0x180)}


def log(msg: str) -> None:
    print(f"[pdf] {msg}", flush=True)


# ---------------------------------------------------------------- table of contents

def toc_docnames(toc: dict) -> list[str]:
    """Every page of a jb-book ``_toc.yml``, in reading order (extensions dropped)."""
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(pathlib.PurePosixPath(n).with_suffix("")) for n in names]


def find_source(root: pathlib.Path, docname: str) -> pathlib.Path:
    for suffix in (".ipynb", ".md", ".rst"):
        path = root / (docname + suffix)
        if path.exists():
            return path
    raise FileNotFoundError(f"_toc.yml lists {docname}, but no {docname}.ipynb/.md/.rst exists")


BIB_PAGE = re.compile(r"\A\s*#[^\n]*\n\s*(```\{bibliography\}[^\n]*\n(?:[^`][^\n]*\n|\n)*```)\s*\Z")


def bibliography_only(text: str) -> str | None:
    """The ``{bibliography}`` directive of a page that holds nothing else (None otherwise).

    In LaTeX, Sphinx prints the bibliography at the very end of the document whatever page
    holds the directive, so such a page would be an empty chapter: the PDF drops it from its
    table of contents and puts the directive at the end of the appendix instead."""
    match = BIB_PAGE.match(text)
    return match.group(1) if match else None


def drop_from_toc(toc: dict, docnames: set[str]) -> dict:
    """``toc`` without the entries of ``docnames`` (and without parts left empty)."""
    toc = copy.deepcopy(toc)

    def keep(entries):
        kept = []
        for entry in entries or []:
            if str(pathlib.PurePosixPath(entry.get("file", "")).with_suffix("")) in docnames:
                continue
            if "sections" in entry:
                entry["sections"] = keep(entry["sections"])
            kept.append(entry)
        return kept

    if "chapters" in toc:
        toc["chapters"] = keep(toc["chapters"])
    if "parts" in toc:
        for part in toc["parts"]:
            part["chapters"] = keep(part.get("chapters"))
        toc["parts"] = [part for part in toc["parts"] if part["chapters"]]
    return toc


# ---------------------------------------------------------------- solutions

def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def notebook_title(nb: dict, fallback: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            match = re.search(r"^#\s+(.+)$", _source(cell), re.M)
            if match:
                return match.group(1).strip()
    return fallback


def split_solutions(nb: dict) -> tuple[dict, list[dict]]:
    """Cut the solutions out of a chapter notebook.

    Returns the chapter without them (outputs kept, a pointer to the appendix where each
    solution was) and the solutions as ``{"label": ..., "cells": [...]}`` in order; their
    cells are the solution's markdown (fences removed) and code cells with stored outputs.
    """
    chapter, solutions, cells = copy.deepcopy(nb), [], []
    for segment in solution_segments(nb):
        if segment[0] == "cell":
            cells.append(copy.deepcopy(segment[1]))
        else:
            _, label, inside = segment
            solutions.append({"label": label, "cells": copy.deepcopy(inside)})
            cells.append(_md(f"*Solution: {{ref}}`in the appendix <sol-{label}>`.*\n"))
    chapter["cells"] = cells
    return chapter, solutions


def solutions_notebook(chapters: list[tuple[str, str, list[dict]]], template: dict, trailer: str = "") -> dict:
    """The appendix: ``chapters`` holds (docname, title, solutions) for each chapter;
    ``trailer`` is markdown for its end (the bibliography directive)."""
    cells = [_md(
        "(solutions-appendix)=\n# Solutions to the exercises\n\n"
        "One section per chapter, one box per exercise; the title of each box refers to its "
        "exercise. The code of a solution ran in its chapter's notebook, after the chapter's "
        "own cells, and uses the chapter's variables; the outputs are the ones stored there "
        "and checked by the tests.\n")]
    for docname, title, solutions in chapters:
        if not solutions:
            continue
        cells.append(_md(f"## {title}\n\nExercises of {{doc}}`/{docname}`.\n"))
        for sol in solutions:
            cells.append(_md(f"```{{solution-start}} {sol['label']}\n:label: sol-{sol['label']}\n```\n\n"
                             # sphinx-exercise labels an exercise "exercise:LABEL" in LaTeX
                             f"```{{raw}} latex\n\\emph{{\\hyperref[exercise:{sol['label']}]{{Back to the "
                             f"exercise}} (page~\\pageref{{exercise:{sol['label']}}}).}}\n```\n"))
            cells += sol["cells"]
            cells.append(_md("```{solution-end}\n```\n"))
    if trailer:
        cells.append(_md(trailer))
    # orphan: the page is not in the toctree; latex_appendices puts it after the last chapter
    nb = {"cells": cells, "metadata": {"orphan": True}, "nbformat": 4, "nbformat_minor": 5}
    for key in ("kernelspec", "language_info"):
        if key in template.get("metadata", {}):
            nb["metadata"][key] = copy.deepcopy(template["metadata"][key])
    widgets = [c for c in cells for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    if widgets:
        raise ValueError("a solution displays a widget; printable_widgets() should have replaced it")
    return nb


def write_notebook(nb: dict, path: pathlib.Path) -> None:
    """Write ``nb`` as nbformat 4.5, every cell with a unique id (cut and added cells lack one)."""
    ids = _Ids()
    for n, cell in enumerate(nb["cells"]):
        cell["id"] = ids(str(cell.get("id") or f"pdf-{n}"))
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- widgets on paper

def _frames(state: dict, model_id: str) -> tuple[list[str], list[str]]:
    """PNG frames (base64) and labels found under a widget, depth first."""
    images, labels, seen = [], [], set()

    def walk(mid):
        if mid in seen or mid not in state:
            return
        seen.add(mid)
        model = state[mid]
        name, st = model.get("model_name", ""), model.get("state", {})
        if name == "ImageModel":
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
                    images.append(buf["data"])
        elif name in ("HTMLModel", "LabelModel") and st.get("value"):
            labels.append(html.unescape(re.sub(r"<[^>]+>", "", st["value"])).strip())
        for child in st.get("children", []):
            walk(str(child).replace("IPY_MODEL_", ""))

    walk(model_id)
    return images, labels


def printable_widgets(nb: dict, state: dict) -> int:
    """Replace each widget output in ``nb`` by up to three of its frames stored in ``state``
    (the notebook's saved widget state) and a caption. Returns the number replaced."""
    cells, replaced = [], 0
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] != "code":
            continue
        outputs, captions = [], []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            replaced += 1
            images, labels = _frames(state, view.get("model_id", ""))
            if not images:
                outputs.append({"output_type": "stream", "name": "stdout",
                                "text": "[interactive widget: open the notebook or the website to use it]\n"})
                continue
            n = len(images)
            picks = list(range(n)) if n <= 3 else [0, n // 2, n - 1]
            for i in picks:
                outputs.append({"output_type": "display_data", "metadata": {},
                                "data": {"image/png": images[i], "text/plain": f"<frame {i + 1} of {n}>"}})
            names = [labels[i] if len(labels) == n else f"frame {i + 1}" for i in picks]
            captions.append(f"*Interactive explorer, printed: {', '.join(names)} ({len(picks)} of its {n} "
                            "frames). On the website or in the notebook a slider shows all of them.*")
        cell["outputs"] = outputs
        if captions:
            cells.append(_md("\n\n".join(captions) + "\n"))
    nb["cells"] = cells
    nb.get("metadata", {}).pop("widgets", None)
    return replaced


def raster_svg(nb: dict) -> int:
    """pdflatex cannot include SVG: give SVG-only outputs a PNG (with ``rsvg-convert``, from
    librsvg2-bin, when installed; otherwise the output falls back to its text). Returns the
    number of SVG-only outputs found."""
    found = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/svg+xml" not in data or {"image/png", "image/jpeg", "application/pdf"} & set(data):
                continue
            found += 1
            svg = "".join(data["image/svg+xml"]) if isinstance(data["image/svg+xml"], list) else data["image/svg+xml"]
            if shutil.which("rsvg-convert"):
                png = subprocess.run(["rsvg-convert", "--zoom", "2", "--format", "png"], input=svg.encode(),
                                     capture_output=True, check=True).stdout
                data["image/png"] = base64.b64encode(png).decode("ascii")
    return found


# ---------------------------------------------------------------- sources and config

def unicode_preamble(texts: list[str]) -> tuple[str, list[str]]:
    """``newunicodechar`` declarations for the table, plus a visible fallback for any other
    character pdflatex would not know (returned so that the caller can warn)."""
    used = {ch for text in texts for ch in text if ord(ch) > 127}
    unknown = sorted(ch for ch in used if ch not in UNICODE_LATEX and ch not in PDFLATEX_KNOWN)
    lines = [r"\usepackage{newunicodechar}"]
    lines += [rf"\newunicodechar{{{ch}}}{{{tex}}}" for ch, tex in UNICODE_LATEX.items()
              if unicodedata.category(ch) != "Mn"]
    lines += [rf"\newunicodechar{{{ch}}}{{\textbf{{[U+{ord(ch):04X}]}}}}" for ch in unknown
              if unicodedata.category(ch) != "Mn"]
    return "\n".join(lines) + "\n", unknown


STRIPPED: set[str] = set()  # combining marks dropped, reported once


def _strip_combining(text: str) -> str:
    """pdflatex cannot put a combining mark on the previous character: compose what Unicode
    can (e + U+0301 -> é) and drop the other marks (Θ̃ -> Θ; write ``$\\tilde\\Theta$`` instead)."""
    text = unicodedata.normalize("NFC", text)
    marks = {ch for ch in text if unicodedata.category(ch) == "Mn"}
    if marks:
        STRIPPED.update(marks)
        text = "".join(ch for ch in text if ch not in marks)
    return text


def _strip_notebook_combining(nb: dict) -> None:
    for cell in nb["cells"]:
        cell["source"] = _strip_combining(_source(cell))
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _strip_combining("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
            for key, value in out.get("data", {}).items():
                if key.startswith("text/"):
                    out["data"][key] = _strip_combining("".join(value) if isinstance(value, list) else value)


def _notebook_texts(nb: dict) -> list[str]:
    texts = []
    for cell in nb["cells"]:
        texts.append(_source(cell))
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            texts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return texts


def pdf_config(config: dict, preamble: str, exclude: list[str]) -> dict:
    config = copy.deepcopy(config)
    config["only_build_toc_files"] = False  # the appendix is read, but is not in the toctree
    config["exclude_patterns"] = list(config.get("exclude_patterns", [])) + exclude
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    latex = config.setdefault("latex", {})
    latex.update({"latex_engine": "pdflatex", "use_jupyterbook_latex": False})
    latex.setdefault("latex_documents", {})["targetname"] = "book.tex"
    sphinx_cfg = config.setdefault("sphinx", {}).setdefault("config", {})
    for key in ("html_static_path", "html_css_files", "mathjax_path", "nb_ipywidgets_js"):
        sphinx_cfg.pop(key, None)  # HTML only (and _vendor/ is not copied)
    local = config["sphinx"].setdefault("local_extensions", {}) or {}
    local["pdf_book"] = str(ROOT / "tools")  # setup() below: exercise references in LaTeX
    config["sphinx"]["local_extensions"] = local
    sphinx_cfg["latex_appendices"] = [APPENDIX]
    sphinx_cfg["latex_show_pagerefs"] = True
    sphinx_cfg["latex_show_urls"] = "footnote"
    elements = dict(sphinx_cfg.get("latex_elements", {}))
    elements["preamble"] = elements.get("preamble", "") + preamble
    elements.setdefault("papersize", "a4paper")
    # long lines in code and outputs: break them rather than overflow the margin
    elements.setdefault("sphinxsetup", "verbatimwrapslines=true, verbatimforcewraps=true")
    sphinx_cfg["latex_elements"] = elements
    return config


def prepare(root: pathlib.Path, out: pathlib.Path) -> dict:
    """Write the PDF's sources into ``out``. Returns what the check needs."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    docnames = toc_docnames(toc)
    if APPENDIX in docnames:
        raise ValueError(f"{APPENDIX} is generated for the PDF; it must not be in _toc.yml")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    bib_directives = {}
    for docname in docnames:
        src = find_source(root, docname)
        if src.suffix == ".md":
            directive = bibliography_only(src.read_text(encoding="utf-8"))
            if directive:
                bib_directives[docname] = directive
    docnames = [d for d in docnames if d not in bib_directives]
    (out / "_toc.yml").write_text(
        "# Generated by tools/pdf_book.py from ../../_toc.yml: edit that one.\n"
        + yaml.safe_dump(drop_from_toc(toc, set(bib_directives)), sort_keys=False), encoding="utf-8")

    for name in ("references.bib", "bib", "tools/sphinx_local.py"):
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name)
        elif src.exists():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / name)
    # non-page files beside the pages (images and the like) come along
    for path in (root / "chapters").rglob("*"):
        if path.is_file() and path.suffix not in (".ipynb", ".md", ".rst") and ".ipynb_checkpoints" not in path.parts:
            target = out / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    texts, chapter_texts, appendix_chapters, template, n_widgets = [], [], [], None, 0
    for docname in docnames:
        src = find_source(root, docname)
        target = out / src.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix != ".ipynb":
            text = _strip_combining(src.read_text(encoding="utf-8"))
            target.write_text(text, encoding="utf-8")
            texts.append(text)
            chapter_texts.append(text)
            continue
        nb = json.loads(src.read_text(encoding="utf-8"))
        chapter, solutions = split_solutions(nb)
        state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        n_widgets += printable_widgets(chapter, state)
        for sol in solutions:
            part = {"cells": sol["cells"]}
            n_widgets += printable_widgets(part, state)
            sol["cells"] = part["cells"]
        n_svg = raster_svg(chapter) + sum(raster_svg({"cells": sol["cells"]}) for sol in solutions)
        if n_svg and not shutil.which("rsvg-convert"):
            log(f"warning: {docname} has {n_svg} SVG-only output(s); pdflatex cannot show them "
                "(apt-get install librsvg2-bin to convert them)")
        _strip_notebook_combining(chapter)
        for sol in solutions:
            _strip_notebook_combining({"cells": sol["cells"]})
        write_notebook(chapter, target)
        chapter_texts += [_source(c) for c in chapter["cells"]]
        texts += _notebook_texts(chapter) + [t for s in solutions for t in _notebook_texts({"cells": s["cells"]})]
        appendix_chapters.append((docname, _strip_combining(notebook_title(nb, docname)), solutions))
        template = template or nb
        log(f"{docname}: {len(solutions)} solution(s) moved to the appendix")

    appendix = solutions_notebook(appendix_chapters, template or {"metadata": {}},
                                  "\n\n".join(bib_directives.values()) + "\n" if bib_directives else "")
    write_notebook(appendix, out / (APPENDIX + ".ipynb"))
    for bib in [out / "references.bib", *sorted((out / "bib").glob("*.bib"))]:
        if bib.exists():
            texts.append(bib.read_text(encoding="utf-8"))
    preamble, unknown = unicode_preamble(texts)
    for ch in sorted(STRIPPED):
        log(f"warning: combining mark U+{ord(ch):04X} ({unicodedata.name(ch, '?')}) dropped: pdflatex cannot "
            "print it; write the symbol in math instead (e.g. $\\tilde\\Theta$)")
    for ch in unknown:
        log(f"warning: no LaTeX for {ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, '?')}); printed as "
            f"[U+{ord(ch):04X}]. Add it to UNICODE_LATEX in tools/pdf_book.py")
    copied = {str(p.relative_to(out).with_suffix("")) for p in (out / "chapters").rglob("*")
              if p.suffix in (".ipynb", ".md", ".rst")}
    exclude = sorted(f"{d}{s}" for d in copied - set(docnames) - {APPENDIX} for s in (".ipynb", ".md"))
    (out / "_config.yml").write_text(
        "# Generated by tools/pdf_book.py from ../../_config.yml: edit that one.\n"
        + yaml.safe_dump(pdf_config(config, preamble, exclude), sort_keys=False, allow_unicode=True),
        encoding="utf-8")
    n_sol = sum(len(s) for _, _, s in appendix_chapters)
    log(f"sources in {out}: {len(docnames)} pages, {n_sol} solutions in the appendix, "
        f"{n_widgets} widget(s) printed as frames")
    return {"titles": [t for _, t, _ in appendix_chapters], "probes": solution_probes(chapter_texts, appendix_chapters)}


def solution_probes(chapter_texts: list[str], chapters) -> dict[str, str]:
    """For each solution with code, the start of its longest code line that is found nowhere
    else in the sources (so that finding it before the appendix means a leak)."""
    probes = {}
    solution_lines = {}
    for _, _, solutions in chapters:
        for sol in solutions:
            solution_lines[sol["label"]] = [_squash(ln)[:40] for c in sol["cells"] if c["cell_type"] == "code"
                                            for ln in _source(c).splitlines()
                                            if len(ln.strip()) >= 25 and not ln.strip().startswith("#")]
    pages = "".join(_squash(t) for t in chapter_texts)
    for label, lines in solution_lines.items():
        others = pages + "".join(
            ln for other, ls in solution_lines.items() if other != label for ln in ls)
        unique = [ln for ln in lines if ln not in others]
        if unique:
            probes[label] = max(unique, key=len)
    return probes


# ---------------------------------------------------------------- Sphinx extension (PDF build only)

def _exercise_refs_for_latex(app, doctree, docname) -> None:
    """sphinx-exercise 1.2.1 labels an exercise ``exercise:LABEL`` in LaTeX, but a reference to
    it from another page (any page, in the single LaTeX document) targets ``DOC:LABEL``, which
    is undefined: the PDF would print "Exercise ??". Point those references at the exercise."""
    if app.builder.format != "latex":
        return
    from docutils import nodes
    from sphinx import addnodes
    from sphinx_exercise.nodes import exercise_enumerable_node, exercise_latex_number_reference

    registry = getattr(app.env, "sphinx_exercise_registry", {})
    for node in list(doctree.findall(nodes.reference)):
        uri = node.get("refuri", "")
        if isinstance(node, exercise_latex_number_reference) or not uri.startswith("%") or "#" not in uri:
            continue
        label = uri.split("#", 1)[1]
        if not isinstance(registry.get(label, {}).get("node"), exercise_enumerable_node):
            continue
        if isinstance(node, addnodes.number_reference):  # "Exercise 5": keep the resolved text
            new = exercise_latex_number_reference("", "", *node.children, **{**node.attributes, "refid": label})
            node.replace_self(new)
            if app.config.latex_show_pagerefs:
                new.parent.insert(new.parent.index(new) + 1,
                                  nodes.raw("", rf" (page~\pageref{{exercise:{label}}})", format="latex"))
        else:  # explicit text: the LaTeX writer makes the id "exercise:LABEL" from this uri
            node["refuri"] = f"%exercise#{label}"


def setup(app):
    """Used as a Sphinx extension by the PDF build only (see ``pdf_config``)."""
    app.connect("doctree-resolved", _exercise_refs_for_latex)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------- build and check

# one file from each TeX package the build needs, and the Debian package that ships it
TEX_NEEDS = {"fancyvrb.sty": "texlive-latex-recommended", "newunicodechar.sty": "texlive-latex-extra",
             "fncychap.sty": "texlive-latex-extra", "tabulary.sty": "texlive-latex-extra",
             "t1txtt.fd": "texlive-fonts-recommended", "tgtermes.sty": "tex-gyre"}
APT = ("apt-get install --no-install-recommends texlive-latex-recommended texlive-latex-extra "
       "texlive-fonts-recommended latexmk tex-gyre")


def missing_tex() -> list[str]:
    """The Debian packages whose files the PDF build needs but cannot find."""
    missing = [tool for tool in ("pdflatex", "latexmk", "kpsewhich") if shutil.which(tool) is None]
    if "kpsewhich" in missing:
        return sorted(set(TEX_NEEDS.values()) | {"latexmk"})
    found = subprocess.run(["kpsewhich", *TEX_NEEDS], capture_output=True, text=True).stdout
    missing += [pkg for name, pkg in TEX_NEEDS.items() if f"/{name}" not in found]
    return sorted(set(missing) - {"kpsewhich"})


def build(out: pathlib.Path, target: pathlib.Path) -> float:
    """``jupyter-book build --builder pdflatex`` on the prepared sources; copy the PDF to ``target``."""
    start = time.perf_counter()
    beside = pathlib.Path(sys.executable).parent / "jupyter-book"  # the venv's, even if not activated
    jb = str(beside) if beside.exists() else "jupyter-book"
    subprocess.run([jb, "build", "--all", "--builder", "pdflatex", str(out)], check=True)
    pdf = out / "_build" / "latex" / "book.pdf"
    if not pdf.exists():
        raise SystemExit(f"[pdf] the build ran but {pdf} is missing; see {out / '_build' / 'latex' / 'book.log'}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pdf, target)
    return time.perf_counter() - start


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check(pdf: pathlib.Path, info: dict) -> list[str]:
    """Problems found in the PDF's text (an empty list when it is fine)."""
    if shutil.which("pdftotext") is None:
        log("pdftotext not found (apt-get install poppler-utils): PDF content not checked")
        return []
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    pages = text.count("\f") + (0 if text.endswith("\f") else 1)
    problems = []
    flat = _squash(text)
    # the appendix starts at its chapter heading, in capitals (the first occurrence is the
    # table of contents, later ones are running heads)
    heads = [m.start() for m in re.finditer(re.escape(_squash("Solutions to the exercises")), flat, re.I)]
    if len(heads) < 2:
        problems.append("no appendix 'Solutions to the exercises'")
        start = len(flat)
    else:
        start = heads[1]
    for title in info["titles"]:
        if _squash(title) not in flat[:start]:
            problems.append(f"chapter '{title}' not found before the appendix")
    if re.search(r"\?\?", text):
        problems.append("unresolved references ('??') in the text")
    if "Bibliography" not in text:
        problems.append("no bibliography")
    n_checked = 0
    for label, probe in info["probes"].items():
        n_checked += 1
        where = [m.start() for m in re.finditer(re.escape(probe), flat)]
        if not any(w > start for w in where):
            problems.append(f"solution {label}: its code is not in the appendix")
        if any(w < start for w in where):
            problems.append(f"solution {label}: its code also appears before the appendix")
    log(f"{pdf}: {pages} pages; {n_checked} solutions' code found only in the appendix"
        if not problems else f"{pdf}: {pages} pages")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "_build" / "pdf_src",
                        help="where the PDF's sources are prepared (default: _build/pdf_src)")
    parser.add_argument("--pdf", type=pathlib.Path, default=ROOT / "_build" / "latex" / "book.pdf",
                        help="where the PDF is copied (default: _build/latex/book.pdf)")
    parser.add_argument("--prepare-only", action="store_true", help="write the sources, do not build")
    parser.add_argument("--no-check", action="store_true", help="do not check the PDF's text")
    args = parser.parse_args(argv)
    missing = [] if args.prepare_only else missing_tex()
    if missing:
        log(f"missing: {', '.join(missing)}. Install the TeX packages (about 350 MB; Debian/Ubuntu):")
        log(f"  sudo {APT}")
        return 2
    info = prepare(ROOT, args.out.resolve())
    if args.prepare_only:
        return 0
    seconds = build(args.out.resolve(), args.pdf.resolve())
    log(f"built in {seconds:.0f} s: {args.pdf}")
    if args.no_check:
        return 0
    problems = check(args.pdf, info)
    for problem in problems:
        log(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
