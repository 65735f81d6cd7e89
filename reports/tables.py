"""Rows and key/value pairs of report.json as HTML tables that fit an A4 page.

A table never grows wider than the page: cells wrap anywhere (CSS), columns with no value are
left out, values shared by every row are stated once above the table, and a table with more
than ``MAX_COLUMNS`` columns is transposed (few rows) or split into several tables that repeat
the identifying columns (many rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audits.report_file import format_number
from reports.cells import cell, esc, label

MAX_COLUMNS = 9  # at the report's table font (8 pt), nine columns of numbers fit the A4 text width
TRANSPOSE_ROWS = 6  # a wide table with at most this many rows reads better turned on its side
SHORT_VALUE = 40  # characters: key/value pairs this short are set two to a table row
TINY_VALUE = 16  # characters: pairs this short are set three to a table row
SHORT_NAME = 20  # characters: a row name this short is never broken over two lines
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Interval:
    """The two ends of an interval (``x_lo``, ``x_hi``) printed as one value."""

    lo: Any
    hi: Any

    def html(self) -> str:
        return f"<span class='n'>{cell(self.lo)} – {cell(self.hi)}</span>"


def interval_label(key: str) -> str:
    """``auc_ci`` → "AUC interval", ``null_auc`` → "null AUC, interval" (a unit stays last)."""
    name, unit = label(key.removesuffix("_ci")), ""
    if name.endswith(")") and " (" in name:
        name, unit = name[: name.rindex(" (")], name[name.rindex(" (") :]
    return f"{name}{'' if key.endswith('_ci') else ','} interval{unit}"


def merge_intervals(row: Mapping[str, Any]) -> dict[str, Any]:
    """``x_lo``/``x_hi`` pairs of a row (or key/value map) merged into one ``Interval`` under ``x``
    (``auc_ci_lo``, ``auc_ci_hi`` → ``auc_ci``), or under ``x_ci`` when the row also has an ``x``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        base = key[:-3]
        if key.endswith("_lo") and base + "_hi" in row:
            out[base + "_ci" if base in row else base] = Interval(value, row[base + "_hi"])
        elif not (key.endswith("_hi") and base + "_lo" in row):
            out[key] = value
    return out


def show(value: Any) -> str:
    return value.html() if isinstance(value, Interval) else cell(value)


def head_label(key: str, value: Any) -> str:
    return esc(interval_label(key) if isinstance(value, Interval) else label(key))


def text_length(value: Any) -> int:
    """About how many characters a value takes on the page."""
    if isinstance(value, Interval):
        return len(format_number(value.lo)) + 3 + len(format_number(value.hi))
    return len(format_number(value)) if isinstance(value, (bool, int, float)) or value is None else len(str(value))


def columns_of(rows: Sequence[Row]) -> list[str]:
    """Every key of the rows, first-seen order, without columns that hold no value in any row."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return [c for c in columns if any(row.get(c) is not None for row in rows)]


def identifying_columns(rows: Sequence[Row], columns: Sequence[str]) -> list[str]:
    """The leading text columns (at most two) that name a row, e.g. ``model`` and ``attack``."""
    out = []
    for c in columns[:2]:
        if c == "status" or not all(isinstance(row.get(c), str) for row in rows):
            break
        out.append(c)
    return out


def shared_columns(rows: Sequence[Row], columns: Sequence[str], keep: Sequence[str]) -> list[str]:
    """Columns with one value in every row (of two or more), except the ``keep`` ones and statuses."""
    if len(rows) < 2:
        return []
    return [c for c in columns if c not in keep and c != "status"
            and all(c in row and type(row[c]) is type(rows[0][c]) and row[c] == rows[0][c] for row in rows)]


def row_class(row: Row) -> str:
    status = row.get("status")
    return f' class="{status.lower()}"' if isinstance(status, str) else ""


def plain_table(rows: Sequence[Row], columns: Sequence[str], names: Sequence[str] = ()) -> str:
    """One table row per row. The ``names`` columns, when short, are kept on one line (a row's name
    split over lines would make every row of the table two lines high)."""
    whole = {c for c in names if all(text_length(r.get(c)) <= SHORT_NAME for r in rows)}
    head = "".join(f"<th>{head_label(c, next((r[c] for r in rows if c in r), None))}</th>" for c in columns)
    body = "".join(f"<tr{row_class(r)}>" + "".join(f"<td class='name'>{show(r.get(c))}</td>" if c in whole
                                                    else f"<td>{show(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def transposed_table(rows: Sequence[Row], ids: Sequence[str], columns: Sequence[str]) -> str:
    """One column per row (headed by its identifying values), one table row per field."""
    heads = [" · ".join(show(r.get(c)) for c in ids) or f"#{i + 1}" for i, r in enumerate(rows)]
    head = "<th></th>" + "".join(f"<th>{h}</th>" for h in heads)
    body = "".join(f"<tr><th>{head_label(c, rows[0].get(c))}</th>"
                   + "".join(f"<td>{show(r.get(c))}</td>" for r in rows) + "</tr>" for c in columns)
    return f"<table class='transposed'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rows_table(rows: Sequence[Row]) -> str:
    """A list of rows (dicts) as one or more tables no wider than the page."""
    rows = [merge_intervals(r) for r in rows]
    columns = columns_of(rows)
    ids = identifying_columns(rows, columns)
    shared = shared_columns(rows, columns, keep=ids)
    columns = [c for c in columns if c not in shared]
    note = ("<p class='shared'>In every row: " + " · ".join(f"{head_label(c, rows[0][c])} {show(rows[0][c])}"
                                                            for c in shared)
            + "</p>") if shared else ""
    if len(columns) <= MAX_COLUMNS:
        return note + plain_table(rows, columns, ids)
    data = [c for c in columns if c not in ids]
    if len(rows) <= TRANSPOSE_ROWS:
        return note + transposed_table(rows, ids, data)
    width = MAX_COLUMNS - len(ids)
    return note + "".join(plain_table(rows, [*ids, *data[i : i + width]], ids) for i in range(0, len(data), width))


def kv_table(items: Mapping[str, Any]) -> str:
    """Key/value pairs; short pairs two or three to a table row, so a list of settings takes less height.

    Pairs with a long value come last, each in a table row of its own (its value spans the row).
    """
    pairs = list(merge_intervals(items).items())
    short = [(k, v) for k, v in pairs if text_length(v) <= SHORT_VALUE]
    long = [(k, v) for k, v in pairs if text_length(v) > SHORT_VALUE]
    longest = max((text_length(v) for _, v in short), default=0)
    per_row = 1 if len(short) <= 3 else 2 if longest > TINY_VALUE or len(short) <= 6 else 3
    body = ""
    for i in range(0, len(short), per_row):
        chunk = short[i : i + per_row]
        body += "<tr>" + "".join(f"<th>{head_label(k, v)}</th><td>{show(v)}</td>" for k, v in chunk)
        body += "<th></th><td></td>" * (per_row - len(chunk)) + "</tr>"
    for k, v in long:
        body += f"<tr><th>{head_label(k, v)}</th><td colspan='{2 * per_row - 1}'>{show(v)}</td></tr>"
    return f"<table class='kv kv{per_row}'>{body}</table>"


def kv_line(items: Mapping[str, Any]) -> str:
    """Key/value pairs as one run of text (``key: value · key: value``), for settings nested deep."""
    return " · ".join(f"{head_label(k, v)}: {show(v)}" for k, v in merge_intervals(items).items())


def accuracy_cell(mean: Any, std: Any) -> str:
    return cell(mean) + (f" ± {cell(std)}" if std is not None else "")


def utility_table(rows: Sequence[Row]) -> str:
    """Utility rows pivoted like Table 3 of the tangent-transformers paper: one row per ε, Ours/Reg per regime.

    Each cell is the mean test accuracy (a fraction) ± its standard deviation over seeds when
    there is one; bold marks the regimes where the tangent model is at least as accurate.
    """
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    epsilons = list(dict.fromkeys(r["epsilon"] for r in rows))
    epsilons.sort(key=lambda e: (e is None, e or 0))
    by = {(r["regime"], r["epsilon"]): r for r in rows}
    head = ("<tr><th rowspan=2>ε</th>" + "".join(f"<th colspan=2>{esc(g)}</th>" for g in regimes) + "</tr><tr>"
            + "".join("<th>Ours</th><th>Reg</th>" for _ in regimes) + "</tr>")
    body = ""
    for e in epsilons:
        body += f"<tr><td>{cell(e) if e is not None else 'non-private'}</td>"
        for g in regimes:
            r = by.get((g, e), {})
            ours, reg = r.get("ours"), r.get("reg")
            best = ours is not None and reg is not None and ours >= reg
            ours_html = accuracy_cell(ours, r.get("ours_std"))
            body += f"<td>{f'<b>{ours_html}</b>' if best else ours_html}</td>"
            body += f"<td>{accuracy_cell(reg, r.get('reg_std'))}</td>"
        body += "</tr>"
    seeds = sorted({r["seeds"] for r in rows if isinstance(r.get("seeds"), int)})
    caption = ("Test accuracy (fraction of test examples classified correctly)"
               + (f", mean over {', '.join(map(str, seeds))} seed(s)" if seeds else "")
               + ". Bold: the tangent model (Ours) is at least as accurate as the original network (Reg).")
    return (f"<table class='table3'><thead>{head}</thead><tbody>{body}</tbody></table>"
            f"<p class='caption'>{esc(caption)}</p>")


def is_utility_grid(rows: Sequence[Any]) -> bool:
    return bool(rows) and all(isinstance(r, Mapping) and {"regime", "epsilon", "ours"} <= set(r) for r in rows)


__all__ = ["MAX_COLUMNS", "Interval", "columns_of", "identifying_columns", "is_utility_grid", "kv_line", "kv_table",
           "merge_intervals", "rows_table", "shared_columns", "utility_table"]
