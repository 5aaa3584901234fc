"""Views of zoo-wide runs: the live table of builds, plain progress lines, the summary and ``zoo status``.

A CLI concern: the executors only send ``JobEvent``s. On a terminal a live table shows every
row waiting, running (with its stage and elapsed time) or finished; elsewhere each event is
one plain line, so logs of CI runs stay readable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..build.jobs import JobEvent, JobResult
from ..units import gb

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.table import Table

    from ..catalog.status import RowStatus


@dataclass
class _Row:
    state: str = "waiting"
    stage: str = ""
    started: float | None = None
    ended: float | None = None
    exit: str = ""


class BatchProgress:
    """Observer of ``JobEvent``s: a live table on a terminal, plain lines otherwise, nothing when disabled."""

    def __init__(self, console: "Console", enabled: bool = True, verb: str = "build") -> None:
        self.console = console
        self.enabled = enabled
        self.verb = verb
        self.rows: dict[tuple[str, str], _Row] = {}
        self.live = None

    def __enter__(self) -> "BatchProgress":
        if self.enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(get_renderable=self.table, console=self.console, refresh_per_second=2, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, event: JobEvent) -> None:
        row = self.rows.setdefault((event.model, event.target), _Row())
        if event.kind == "start":
            row.state, row.started = "running", event.at
        elif event.kind == "stage":
            row.stage = event.stage or ""
        elif event.kind == "note":
            row.stage = f"{event.stage}: {event.text}"
        elif event.kind == "done":
            row.state, row.ended, row.exit, row.stage = "finished", event.at, event.text, ""
        if self.enabled and self.live is None and event.kind != "note":
            self.console.print(self._line(event, row), highlight=False, soft_wrap=True)

    def _line(self, event: JobEvent, row: _Row) -> str:
        name = f"{event.model} --target {event.target}"
        if event.kind == "waiting":
            return f"{self.verb} {name}: waiting"
        if event.kind == "start":
            return f"{self.verb} {name}: started"
        if event.kind == "stage":
            return f"{self.verb} {name}: {event.stage} ({_elapsed(row, event.at)})"
        return f"{self.verb} {name}: finished, {event.text} ({_elapsed(row, event.at)})"

    def table(self) -> "Table":
        from rich.table import Table

        table = Table(title=f"zoo {self.verb}", title_justify="left")
        for column in ("model", "target", "state", "stage", "elapsed"):
            table.add_column(column, no_wrap=column != "stage")
        for (model, target), row in self.rows.items():
            state = row.state if row.state != "finished" else f"finished ({row.exit})"
            table.add_row(model, target, state, row.stage, _elapsed(row) if row.started else "")
        return table


def _elapsed(row: _Row, now: float | None = None) -> str:
    """Seconds since the row started, until it ended, or until ``now`` (default: the clock)."""
    if row.started is None:
        return "0 s"
    return f"{(row.ended or now or time.time()) - row.started:.0f} s"


def summary_table(results: list[JobResult], title: str) -> "Table":
    from rich.table import Table

    table = Table(title=title)
    for column in ("model", "target", "result", "exit", "time", "detail"):
        table.add_column(column, no_wrap=column not in ("detail",), justify="right" if column in ("exit", "time") else "left")
    for r in results:
        detail = r.message + (f" (hint: {r.hint})" if r.hint and r.exit_code else "")
        table.add_row(r.model, r.target, r.outcome, str(r.exit_code), f"{r.seconds:.0f} s" if r.seconds else "", detail)
    return table


STATUS_COLUMNS = ("model", "target", "scheme", "plan", "built", "state", "size", "time", "memory")


def status_table(rows: list["RowStatus"]) -> Any:
    """``zoo status``: one table if the terminal is wide enough, else one block per model (as ``zoo list``)."""
    return StatusView(rows)


@dataclass
class StatusView:
    rows: list["RowStatus"]

    def __rich_console__(self, console: "Console", options: "ConsoleOptions") -> "RenderResult":
        from rich.measure import Measurement

        cells = [_status_cells(row) for row in self.rows]
        wide = _status_table(cells, STATUS_COLUMNS, "zoo status")
        if Measurement.get(console, options.update_width(100_000), wide).maximum <= options.max_width:
            yield wide
        else:
            models = dict.fromkeys(c["model"] for c in cells)
            for index, model in enumerate(models):
                yield _status_table([c for c in cells if c["model"] == model], STATUS_COLUMNS[1:],
                                    f"zoo status: {model}" if index == 0 else model)
        if any(row.built_from == "record" for row in self.rows):
            yield "* from zoo/records (no bundle in build/)"


def _status_cells(row: "RowStatus") -> dict[str, str]:
    # Hashes by their first 8 digits (--json has them whole).
    built = (row.built_plan_hash or "-")[:8] + ("*" if row.built_from == "record" else "")
    return {"model": row.model, "target": row.target, "scheme": row.scheme, "plan": row.plan_hash[:8],
            "built": built, "state": row.state, "size": gb(row.estimated_bytes), "time": _duration(row.seconds),
            "memory": gb(row.memory_bytes)}


def _status_table(cells: list[dict[str, str]], columns: tuple[str, ...], title: str) -> "Table":
    from rich.table import Table

    table = Table(title=title, box=None, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in ("size", "time", "memory") else "left")
    for row in cells:
        table.add_row(*(row[column] for column in columns))
    return table


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"~{seconds:.0f} s"
    if seconds < 7200:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
