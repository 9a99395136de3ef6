"""Every public function and class of distillkit describes each of its parameters in its
numpydoc docstring: a "Parameters" entry (or, for a class, an "Attributes" entry) with a
type and at least one line of description. The API reference is built from these
docstrings, and a parameter with a type but no words is a question the reader cannot ask.

Public means: listed in ``__all__`` of a subpackage, or defined without a leading underscore
in one of the top-level modules below. Grouped entries ("x, y : Tensor") count for each name.

Objects whose docstrings still lack descriptions are listed in ``PENDING`` (tests/
docstrings_pending.txt, one name a line): their test is a strict expected failure, so an
object that is fixed fails until its line is removed, and a new undocumented parameter
anywhere else fails at once.
"""

import dataclasses
import importlib
import inspect
import pathlib
import re

import pytest

PACKAGES = ["distillkit", "distillkit.coresets", "distillkit.distill", "distillkit.data", "distillkit.models",
            "distillkit.robust", "distillkit.theory", "distillkit.plots", "distillkit.widgets", "distillkit.exercises"]
MODULES = ["distillkit.train", "distillkit.evaluate", "distillkit.protocols", "distillkit.claims", "distillkit.tables",
           "distillkit.utils", "distillkit.types"]
PENDING = frozenset(line.strip() for line in
                    (pathlib.Path(__file__).with_name("docstrings_pending.txt")).read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}\s*$", re.M)


def sections(doc: str) -> dict[str, str]:
    """The docstring's numpydoc sections by title ("Parameters", "Attributes", ...)."""
    found = {}
    marks = list(SECTION.finditer(doc))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(doc)
        found[m.group(1).strip()] = doc[m.end():end]
    return found


def described(section: str) -> dict[str, str]:
    """name -> description for each entry of a Parameters-like section."""
    entries, current = {}, []
    for line in section.splitlines():
        if line.strip() and not line.startswith((" ", "\t")):
            head, _, kind = line.partition(" : ") if " : " in line else (line.rstrip(":"), "", "")
            current = [n.strip().lstrip("*") for n in head.split(",") if n.strip()]
            for name in current:
                # "lam, eta : see :func:`other`" points to the description elsewhere
                entries[name] = kind.strip() + " " if kind.strip().startswith("see ") else ""
        elif line.strip():
            for name in current:
                entries[name] += line.strip() + " "
    return entries


def public_objects():
    seen = {}
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen.setdefault(id(obj), (f"{name}.{attr}", obj))
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen.setdefault(id(obj), (f"{name}.{attr}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def parameters(obj) -> list[str]:
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj):
            return [f.name for f in dataclasses.fields(obj) if f.init]
        if "__init__" not in vars(obj) and "__new__" not in vars(obj):
            return []
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def missing(obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    parts = sections(doc)
    entries = described(parts.get("Parameters", ""))
    if inspect.isclass(obj):
        entries = {**described(parts.get("Attributes", "")), **entries}
        if "__init__" in vars(obj):
            init = sections(inspect.getdoc(obj.__init__) or "")
            entries = {**described(init.get("Parameters", "")), **entries}
    out = []
    for name in parameters(obj):
        if name not in entries:
            out.append(f"{name}: not listed")
        elif not entries[name].strip():
            out.append(f"{name}: no description")
    return out


OBJECTS = public_objects()


def test_the_parser_reads_numpydoc():
    doc = "Summary.\n\nParameters\n----------\nx, y : Tensor\n    The data.\nbudget : int\n\nReturns\n-------\nSelection\n"
    assert described(sections(doc)["Parameters"]) == {"x": "The data. ", "y": "The data. ", "budget": ""}


@pytest.mark.parametrize("name,obj", OBJECTS, ids=[n for n, _ in OBJECTS])
def test_every_parameter_is_described(name, obj):
    found = missing(obj)
    if name in PENDING:
        if found:
            pytest.xfail(f"{len(found)} parameters without a description (listed in docstrings_pending.txt)")
        pytest.fail(f"{name} describes every parameter now: remove it from tests/docstrings_pending.txt")
    assert not found, f"{name}: " + "; ".join(found)


def test_pending_names_exist():
    names = {name for name, _ in OBJECTS}
    assert PENDING <= names, f"docstrings_pending.txt names no public object: {sorted(PENDING - names)}"
