"""What ``zoo run`` sends through a bundle's chat template: one user message, or a conversation from a file.

A conversation file is JSON: an array of turns ``{"role": "system" | "user" | "assistant",
"content": "..."}``, or an object ``{"messages": [...]}`` as chat APIs send it. The last turn is
the user's: the model writes the next assistant turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..errors import ConfigError

HINT = 'write a JSON array of {"role": "system"|"user"|"assistant", "content": "..."} turns, the last a user turn'


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "user", "assistant"]
    content: str


Turns = TypeAdapter(list[Turn])


def conversation(prompt: str | None, messages: Path | None) -> list[dict[str, str]]:
    """The turns to render: ``--prompt`` as one user turn, or ``--messages FILE``; exactly one of them."""
    if (prompt is None) == (messages is None):
        raise ConfigError("zoo run takes --prompt TEXT or --messages FILE (one of them)",
                          "--prompt for one user message, --messages for a conversation in a JSON file")
    if prompt is not None:
        return [{"role": "user", "content": prompt}]
    return read_conversation(messages)


def read_conversation(path: Path) -> list[dict[str, str]]:
    """The turns of a conversation file, checked; errors name the file and the turn."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--messages {path}: cannot read a JSON conversation ({type(exc).__name__})", HINT) from None
    turns = data.get("messages") if isinstance(data, dict) else data
    try:
        checked = Turns.validate_python(turns)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        raise ConfigError(f"--messages {path}: messages{where}: {error['msg']}", HINT) from None
    if not checked or checked[-1].role != "user":
        raise ConfigError(f"--messages {path}: the last turn must be the user's (the model answers it)", HINT)
    return [turn.model_dump() for turn in checked]
