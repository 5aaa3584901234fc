"""Paths as zootool shows and records them: relative to a root, with forward slashes."""

from __future__ import annotations

from pathlib import Path


def relative(path: Path | str, root: Path | str, outside: str | None = None) -> str:
    """``path`` relative to ``root`` (both resolved); ``outside`` (default: the path as given) when not below it."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path) if outside is None else outside
