"""`zoo families`: the architecture families the zoo builds, a line each or as JSON."""

from __future__ import annotations

from .output import emit_json, say


def families_command(as_json: bool) -> None:
    from ..arch.registry import family_rows

    rows = family_rows()
    if as_json:
        emit_json([row.model_dump(mode="json") for row in rows])
        return
    for row in rows:
        say(f"{row.family:<12} {', '.join(row.model_types):<24} {row.summary}  ({row.module})")
