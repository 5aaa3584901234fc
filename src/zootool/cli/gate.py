"""``zoo gate``: gate a built bundle, or replay a published transcript against a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..build.pipeline import ceiling_cache
from ..build.quiet import captured
from ..bundle.layout import bundle_dir, checkpoint_record, recorded_checkpoint
from ..bundle.manifest import Manifest, read_manifest
from ..config.registry import get
from ..config.zoo_data import Zoo
from ..errors import ConfigError, VerifyError
from ..fetch.hub import fetch_checkpoint
from ..plan.recorded import plan_of
from ..plan.gate_runtime import GATE_RUNTIMES
from ..plan.resolve import BuildPlan

RUNTIME_CHOICES = ("auto", *GATE_RUNTIMES)


def run_gate_command(
    zoo: Zoo, model: str, target: str | None, replay_json: Path | None, weights: Path | None, out: Path | None,
    runtime: str = "auto", show_progress: bool = False,
) -> dict[str, Any]:
    """Resolve what to gate, run it, and return a summary with the transcript path.

    ``runtime``: ``auto`` (the plan's ``gate_runtime``), ``engine`` or ``streamed``.
    ``show_progress``: a spinner on the terminal naming the side and layer (or call) running.
    """
    from ..gate.progress import reporting_to
    from ..gate.run import checked_runtime, replay, run_gate
    from .progress import terminal_progress

    chosen = _runtime_option(runtime)
    bundle = Path(model) if replay_json else None
    manifest, plan, bundle = _locate(zoo, model, target, bundle)
    checked_runtime(plan, chosen)
    model_dir = bundle / (manifest.model_dir or "")
    needed = not replay_json or not plan.kernel.runs_on_linux or chosen == "streamed"
    record = checkpoint_record(zoo.root, plan.recipe_id, plan.target)
    checkpoint = _checkpoint(zoo, plan, weights or recorded_checkpoint(record), needed)
    transcript_path = out or bundle.parent / f"{bundle.name}.gate.json"
    with (
        terminal_progress(show_progress) as progress, progress.stage("gate") as note, reporting_to(note),
        captured(bundle.parent / f"{bundle.name}.gate.log"),
    ):
        if replay_json:
            transcript = replay(plan, checkpoint, replay_json, model_dir, transcript_path, chosen)
        else:
            transcript = run_gate(plan, checkpoint, model_dir, transcript_path, ceiling_cache(zoo), chosen)
    return {**transcript.summary(), "transcript": str(transcript_path)}


def _runtime_option(value: str) -> Any:
    if value not in RUNTIME_CHOICES:
        raise ConfigError(f"--runtime {value!r} is not one of {', '.join(RUNTIME_CHOICES)}",
                          "auto takes the plan's gate_runtime (see zoo plan)")
    return None if value == "auto" else value


def _locate(zoo: Zoo, model: str, target: str | None, bundle: Path | None) -> tuple[Manifest, BuildPlan, Path]:
    if bundle is None:
        if not target:
            raise ConfigError("zoo gate MODEL needs --target", "e.g. zoo gate tiny-lfm2-moe --target mac")
        recipe, path = get(zoo, model)
        bundle = bundle_dir(zoo.root, recipe.id, target)
    try:
        manifest = read_manifest(bundle)
    except (OSError, ValueError):
        raise VerifyError(f"{bundle}: no built bundle (manifest.json missing)", "run zoo build first") from None
    return manifest, plan_of(zoo, manifest, bundle), bundle


def _checkpoint(zoo: Zoo, plan: BuildPlan, weights: Path | None, needed: bool) -> Path | None:
    """``--weights``, else the checkpoint the build read (re-checked), else fetch it as the build did."""
    if not needed:
        return None
    return fetch_checkpoint(plan, zoo.root / ".zoo-cache", zoo.data_dir / "licenses", weights=weights)
