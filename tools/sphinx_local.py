"""Local Sphinx tweaks: the API reference's citations, and author-year bibliography labels.

numpydoc References sections write citations as ``.. [1] ...`` and cite them as ``[1]_``.
On one API page many docstrings define ``[1]``, which docutils reports as duplicate targets,
and unused ones as unreferenced. The reference list is therefore rendered as plain
paragraphs ("[1] Author, Title ..."), and ``[1]_`` as plain text "[1]".
"""

import re
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle

_DEF = re.compile(r"^(\s*)\.\. \[(\w+)\]\s*(.*)$")
_REF = re.compile(r"\[(\w+)\]_")


def _plain_citations(app, what, name, obj, options, lines):
    out = []
    i = 0
    while i < len(lines):
        match = _DEF.match(lines[i])
        if not match:
            out.append(_REF.sub(r"[\1]", lines[i]))
            i += 1
            continue
        indent, label, text = match.groups()
        parts = [text.strip()]
        i += 1
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > len(indent):
            parts.append(lines[i].strip())
            i += 1
        out += [f"{indent}[{label}] " + " ".join(p for p in parts if p), ""]
    lines[:] = out


def _surname(person) -> str:
    return str(Text(" ").join(person.rich_prelast_names + person.rich_last_names))


def author_year_label(entry) -> str:
    """The label of one entry as the book's author-year citations print it: "Welling, 2009",
    "Zhao and Bilen, 2021", "Zhao et al., 2021" (three or more authors)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if not names:
        who = str(entry.fields.get("organization") or entry.fields.get("title", entry.key)).strip("{}")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Bibliography labels that read like the citations in the text (sphinxcontrib-bibtex's
    ``author_year`` reference style); two entries with the same label get 2021a, 2021b."""

    def format_labels(self, sorted_entries):
        labels = [author_year_label(e) for e in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(AlphaStyle):
    """The alpha style's entries and order (author, year, title), with author-year labels."""

    default_label_style = "authoryear"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_citations, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
