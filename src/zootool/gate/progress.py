"""Where a running gate is, for whoever shows it: ``oracle: layer 5/24``, ``candidate: call 3/41``.

A gate side can run for minutes (a full-size streamed side) to hours (the flagship through
the Linux Core AI CPU runtime). The code that knows how far it is (the layer loop, the
engine driver) is far below the caller that shows it (``zoo gate``, the build's gate
stage), so the observer travels in a context variable instead of through every signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Observer = Callable[[str], None]

_observer: ContextVar[Observer | None] = ContextVar("gate_observer", default=None)
_phase: ContextVar[str] = ContextVar("gate_phase", default="gate")


@contextmanager
def reporting_to(observer: Observer | None) -> Iterator[None]:
    """Send the gate's progress lines inside the block to ``observer``."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Name the part of the gate running inside the block (steps are reported under it)."""
    token = _phase.set(name)
    tell(name)
    try:
        yield
    finally:
        _phase.reset(token)


def step(done: int, total: int, unit: str) -> None:
    """``done`` of ``total`` ``unit``s of the current phase are finished."""
    note(f"{unit} {done}/{total}")


def note(text: str) -> None:
    """What the current phase is doing now."""
    tell(f"{_phase.get()}: {text}")


def tell(text: str) -> None:
    observer = _observer.get()
    if observer is not None:
        observer(text)
