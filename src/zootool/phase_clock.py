"""Wall and CPU time of the named phases of a long step (the export's load, convert, save).

The export runs in a child process, several calls below the build that reports its
timings, so the recording travels in a context variable: the child records, and sends the
figures back with its result. CPU time is the whole process's (every thread), so
``cpu_seconds / seconds`` says how many cores a phase kept busy. On Linux a phase that raised
the process's peak resident memory (``VmHWM`` of ``/proc/self/status``) keeps the new peak, so
the phase that set the process's peak is named (VmHWM counts file-backed pages too, such as
the converter's output; ``plan.footprint`` predicts the anonymous part). The
peak is read, never reset: resetting it would hide the real peak from ``getrusage`` and
``time -v``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import BaseModel


class PhaseTime(BaseModel):
    """Seconds of wall time and of CPU time (all threads) spent in one phase, summed over its runs."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int | None = None  # the process's peak, where this phase raised it; else None

    @property
    def cores(self) -> float:
        """Cores kept busy on average (1.0 = one core the whole time)."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


class _Recording:
    """The phases so far, the open ones (innermost last) and when time was last charged."""

    def __init__(self) -> None:
        self.phases: dict[str, PhaseTime] = {}
        self.open: list[str] = []
        self.mark = (time.perf_counter(), time.process_time())
        self.peak = _peak_rss() or 0  # what the process reached before the recording

    def charge(self) -> None:
        """Give the time since the last charge to the innermost open phase."""
        now = (time.perf_counter(), time.process_time())
        peak = _peak_rss()
        if self.open:
            total = self.phases[self.open[-1]]
            total.seconds += now[0] - self.mark[0]
            total.cpu_seconds += now[1] - self.mark[1]
            if peak is not None and peak > self.peak:
                total.peak_rss_bytes = peak
        self.mark = now
        self.peak = max(self.peak, peak or 0)


STATUS = Path("/proc/self/status")


def _peak_rss() -> int | None:
    """The process's peak resident bytes so far (``VmHWM``); None where the system does not say."""
    try:
        line = next(line for line in STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


_recording: ContextVar[_Recording | None] = ContextVar("phase_recording", default=None)


@contextmanager
def recording() -> Iterator[dict[str, PhaseTime]]:
    """Collect the phases timed inside the block into the dict it yields (in order of first start)."""
    current = _Recording()
    token = _recording.set(current)
    try:
        yield current.phases
    finally:
        _recording.reset(token)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Give the block's wall and CPU time to phase ``name`` of the current recording, if any.

    Phases do not overlap: while a phase runs inside another (quantizing inside loading),
    its time is its own, not the outer one's, so the phases add up to the time recorded.
    """
    current = _recording.get()
    if current is None:
        yield
        return
    current.charge()
    current.phases.setdefault(name, PhaseTime())
    current.open.append(name)
    try:
        yield
    finally:
        current.charge()
        current.open.pop()
