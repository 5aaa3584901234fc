"""`zoo run`: text from a bundle through the engine driver, as an app's engine would run it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .output import console, emit_json, say


def run_command(bundle: Path, prompt: Optional[str], messages: Optional[Path], max_tokens: int, greedy: bool,
                seed: int, *, as_json: bool, root: Optional[Path]) -> None:
    from ..build.quiet import quiet_command
    from ..gate.conversation import conversation
    from ..gate.generate import generate

    turns = conversation(prompt, messages)
    with quiet_command("run", root):
        result = generate(bundle, turns, max_tokens, greedy, seed)
    if as_json:
        emit_json(result.model_dump())
        return
    say(result.text)
    console(stderr=True).print(f"({result.prompt_tokens} prompt tokens, {len(result.generated_tokens)} generated, "
                               f"stopped by {result.stopped_by})", highlight=False)
