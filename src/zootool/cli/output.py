"""What the ``zoo`` command prints: plain lines, JSON on stdout, errors with their hint on stderr.

Rich is imported when printing, not when the command starts.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def console(stderr: bool = False) -> "Console":
    """A console made when printing, so it sees the terminal width (and COLUMNS) of now.

    Markup and emoji codes are off: recipes and zoo data reach the screen as written.
    """
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False)


def say(text: str) -> None:
    """One plain message line; long lines are left to the terminal to wrap."""
    console().print(text, soft_wrap=True, highlight=False)


_emitted = {"json": False}  # whether this command has printed its JSON document yet


def emit_json(data: Any) -> None:
    _emitted["json"] = True
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def start_command() -> None:
    _emitted["json"] = False


def emit_error_json(message: str, hint: str | None, exit_code: int) -> None:
    """A failed ``--json`` command's one document on stdout, unless it printed its own before failing."""
    if not _emitted["json"]:
        emit_json({"error": {"message": message, "hint": hint or None, "exit_code": exit_code}})


def report(message: str, hint: str | None) -> None:
    err = console(stderr=True)
    err.print("error:", style="bold red", end=" ")
    err.print(message, highlight=False, soft_wrap=True)
    if hint:
        err.print(f"  hint: {hint}", highlight=False, soft_wrap=True)
