"""Result tables that read as tables: HTML on the website and in Jupyter, aligned text in a terminal.

    >>> from distillkit.tables import table
    >>> print(table([["random", 0.432, 0.851], ["herding", 0.675, 0.888]],
    ...             columns=["method", "1 ipc", "10 ipc"], percent=True))
    method   1 ipc  10 ipc
    -------  -----  ------
    random    43.2    85.1
    herding   67.5    88.8

A cell whose last expression is a :class:`Table` shows one HTML table (wide tables scroll
inside their own box); ``print(t)`` gives the text form. Cells may hold strings, ints,
floats, or an :class:`~distillkit.evaluate.EvalResult` (shown as ``mean ± std`` in points,
or the single value with "(1 seed)").
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping, Sequence

from ._validation import fail

__all__ = ["Table", "table"]


class Table:
    """A small immutable result table; build it with :func:`table`.

    Parameters
    ----------
    header : tuple of str
        Column titles.
    body : tuple of tuples of str
        The rows, already formatted as text.
    title : str or None
        A caption shown above the table.
    """

    def __init__(self, header: tuple[str, ...], body: tuple[tuple[str, ...], ...], title: str | None):
        self.header, self.body, self.title = header, body, title

    def _numeric(self, j: int) -> bool:
        cells = [row[j] for row in self.body if row[j] not in ("", "-")]
        return bool(cells) and all(_looks_numeric(c) for c in cells)

    def __str__(self) -> str:
        widths = [max(len(self.header[j]), *(len(r[j]) for r in self.body)) if self.body else len(self.header[j])
                  for j in range(len(self.header))]
        right = [self._numeric(j) for j in range(len(self.header))]

        def fmt(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

        lines = [self.title] if self.title else []
        lines += [fmt(self.header), "  ".join("-" * w for w in widths)]
        lines += [fmt(row) for row in self.body]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        right = [self._numeric(j) for j in range(len(self.header))]

        def cell(tag, text, r):
            style = ' style="text-align:right"' if r else ' style="text-align:left"'
            return f"<{tag}{style}>{html.escape(text)}</{tag}>"

        head = "".join(cell("th", h, r) for h, r in zip(self.header, right))
        rows = "".join("<tr>" + "".join(cell("td", c, r) for c, r in zip(row, right)) + "</tr>" for row in self.body)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return (f'<div class="dk-table" style="overflow-x:auto;max-width:100%"><table class="dk-table">{caption}'
                f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def _looks_numeric(text: str) -> bool:
    token = text.replace("±", " ").replace("%", " ").replace("(1 seed)", " ").split()
    try:
        [float(t) for t in token]
    except ValueError:
        return False
    return bool(token)


def _format(value, digits: int, percent: bool) -> str:
    if value is None:
        return "-"
    if hasattr(value, "accuracies") and hasattr(value, "mean"):
        accs = value.accuracies
        if len(accs) == 1:
            return f"{100 * accs[0]:.1f} (1 seed)"
        return f"{100 * value.mean:.1f} ± {100 * value.std:.1f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return f"{100 * v:.{digits}f}" if percent else f"{v:.{digits}f}"
    return str(value)


def table(rows, columns: Sequence[str] | None = None, *, title: str | None = None, digits: int = 1,
          percent: bool = False) -> Table:
    """Build a result :class:`Table`.

    Parameters
    ----------
    rows : sequence of sequences, or sequence of mappings
        One row per entry. Mappings are read in the order of ``columns`` (or of the first
        mapping's keys).
    columns : sequence of str, optional
        Column names (required for rows that are sequences).
    title : str, optional
        A caption above the table.
    digits : int
        Decimals for floats.
    percent : bool
        Show floats as percentages (x100); an EvalResult is always shown in points.
    """
    func = "table"
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        fail(func, "rows", "a sequence of rows", rows, error=TypeError)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 10:
        fail(func, "digits", "an int in [0, 10]", digits)
    if rows and isinstance(rows[0], Mapping):
        columns = list(columns) if columns is not None else list(rows[0].keys())
        raw = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                fail(func, "rows", "rows of one kind (all mappings)", f"row {i}: {row!r}", error=TypeError)
            raw.append([row.get(c) for c in columns])
    else:
        if columns is None:
            fail(func, "columns", "a sequence of column names for rows that are sequences", columns, error=TypeError)
        columns = list(columns)
        raw = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes, Mapping)) or not isinstance(row, Sequence):
                fail(func, "rows", "rows that are sequences", f"row {i}: {row!r}", error=TypeError)
            if len(row) != len(columns):
                fail(func, "rows", f"rows of {len(columns)} cells (one per column)", f"row {i} with {len(row)}")
            raw.append(list(row))
    header = tuple(str(c) for c in columns)
    body = tuple(tuple(_format(v, digits, percent) for v in row) for row in raw)
    return Table(header, body, title)
