"""Rich progress for build stages (a CLI concern: the core only reports stage events)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class StageProgress:
    """Observer for ``builder.Stages``: a spinner per running stage, a line per finished one."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True, disable=not enabled,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "StageProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[str], None]]:
        """A stage shown for the block; yields the function that notes progress inside it."""
        self(name, "start", 0.0)
        start = time.perf_counter()
        yield lambda text: self(name, f"note:{text}", 0.0)
        self(name, "done", time.perf_counter() - start)

    def __call__(self, stage: str, event: str, seconds: float) -> None:
        if event == "start":
            self.tasks[stage] = self.progress.add_task(f"{stage}...", total=None)
            return
        if event.startswith("note:"):
            self.progress.update(self.tasks[stage], description=f"{stage}: {event[5:]}...")
            return
        self.progress.remove_task(self.tasks.pop(stage))
        if self.enabled:
            self.console.print(f"[green]done[/] {stage:<9} {seconds:7.1f} s")


def terminal_progress(enabled: bool) -> StageProgress:
    """Stage progress on the terminal's stderr, still shown while the build captures fds 1 and 2."""
    from ..build.quiet import terminal_stream
    from .output import console

    return StageProgress(Console(file=terminal_stream(), force_terminal=console(stderr=True).is_terminal), enabled)
