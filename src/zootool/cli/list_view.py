"""``zoo list`` / ``zoo show``: plans as a table that fits the terminal.

Ids and numbers are never cut or broken. The view picks the first layout whose
natural width fits: one boxed row per target; else one block per model (its id and
parameter count as a heading, its targets below); else one line per fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ..units import gb
from .list_rows import ListRow

TITLE = "zoo models x targets"
MODEL_COLUMNS = ("model", "params")
TARGET_COLUMNS = ("target", "platform", "scheme", "kernel", "estimate", "budget", "verdict")
NUMBERS = ("params", "estimate", "budget")
UNLIMITED = 100_000


def cells(row: ListRow) -> dict[str, str]:
    """One row's cells, by column, as they are shown."""
    params = row.params
    return {
        "model": row.model,
        "params": f"{params / 1e9:.3f}B" if params >= 1e8 else f"{params:,}",
        "target": row.target,
        "platform": row.platform,
        "scheme": row.scheme,
        "kernel": row.kernel,
        "estimate": gb(row.estimated_bytes),
        "budget": gb(row.budget_bytes),
        "verdict": "fits" if row.fits else "OVER BUDGET",
    }


@dataclass
class ListView:
    """A Rich renderable that chooses its layout from the width it is given."""

    rows: list[ListRow]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = [cells(row) for row in self.rows]
        # Measured without a width limit (a measurement is otherwise clamped to it), and
        # without rows: the column widths already hold the widest cell, so it is as wide.
        unlimited = options.update_width(UNLIMITED)
        for layout in (one_table, table_per_model):
            if Measurement.get(console, unlimited, layout(rows, filled=False)).maximum <= options.max_width:
                yield layout(rows)
                return
        yield lines_per_target(rows)


def one_table(rows: list[dict[str, str]], filled: bool = True) -> Table:
    table = Table(title=TITLE)
    columns = (MODEL_COLUMNS[0], *TARGET_COLUMNS[:4], MODEL_COLUMNS[1], *TARGET_COLUMNS[4:])
    _add_columns(table, columns, rows)
    for row in rows if filled else ():
        table.add_row(*(row[name] for name in columns))
    return table


def table_per_model(rows: list[dict[str, str]], filled: bool = True) -> Group:
    """A heading per model, then its targets; the column widths are shared so tables align."""
    parts: list[Any] = [Text(TITLE, style="italic", justify="center")]
    for index, (model, targets) in enumerate(_by_model(rows).items()):
        parts.append(Text(f"{model}  {targets[0]['params']} params", style="bold"))
        # An empty table without a header measures as wide as it may be: keep the header then.
        table = Table(box=None, padding=(0, 2, 0, 0), show_header=index == 0 or not filled, pad_edge=False)
        _add_columns(table, TARGET_COLUMNS, rows)
        for row in targets if filled else ():
            table.add_row(*(row[name] for name in TARGET_COLUMNS))
        parts.append(table)
    return Group(*parts)


def lines_per_target(rows: list[dict[str, str]]) -> Group:
    """The narrowest layout: one fact per line, so no value is split across lines."""
    parts: list[Any] = [Text(TITLE, style="italic")]
    for model, targets in _by_model(rows).items():
        parts.append(Text(f"{model}  {targets[0]['params']} params", style="bold"))
        for row in targets:
            parts.append(Text(f"  {row['target']}: {row['verdict']}"))
            parts += [Text(f"    {name} {row[name]}") for name in TARGET_COLUMNS[1:-1]]
    return Group(*parts)


def _add_columns(table: Table, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    for name in columns:
        width = max([len(name)] + [len(row[name]) for row in rows])
        table.add_column(name, justify="right" if name in NUMBERS else "left", no_wrap=True, min_width=width)


def _by_model(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["model"], []).append(row)
    return grouped
