"""``zoo build MODEL --target T``: resolve one row, build it with stage progress, print its summary."""

from __future__ import annotations

from typing import Any

from ..paths import relative
from .output import emit_json, say
from .render import publishable_text


def build_one(z: Any, model: str, target: str, settings: Any, options: Any, revision: str | None,
              as_json: bool) -> None:
    """Build one (model, target) of zoo ``z``; ``settings`` are the command line's overrides."""
    from ..build.pipeline import Stages, build as run_build
    from ..config.registry import get
    from ..plan.fits import require_fits
    from ..plan.resolve import resolve
    from .progress import terminal_progress
    from .render import build_summary

    recipe, path = get(z, model)
    resolved = resolve(recipe, target, z, recipe_file=relative(path, z.root), overrides=settings, revision=revision)
    require_fits(resolved, recipe, z)
    with terminal_progress(enabled=not as_json) as observer:
        result = run_build(resolved, z, options, Stages(observer))
    summary = build_summary(result)
    emit_json(summary) if as_json else say(summary_text(summary))


def summary_text(summary: dict[str, Any]) -> str:
    state = "reused (identical plan and inputs)" if summary["cached"] else "built"
    phases = "".join(f"\n  {stage}: {phases_text(times)}" for stage, times in summary["phases"].items())
    return (
        f"{state}: {summary['bundle']}\n"
        f"  size {summary['bundle_size']} (model {summary['model_size']}, estimated {summary['estimated_size']}, "
        f"budget {summary['budget_size']})\n"
        f"{_ops_line(summary['program_ops'])}"
        f"  gate {summary['gate']}\n  publishable: {publishable_text(summary['publish_refusals'])}{phases}"
    )


def _ops_line(ops: int | None) -> str:
    return f"  program {ops:,} ops\n" if ops is not None else ""


def phases_text(times: dict[str, dict[str, Any]]) -> str:
    """``load 61.2 s (1.71 cores), convert 30.5 s (1.00 cores, peak 9.80 GB)``: where a stage's time
    went, and which phase set its peak memory."""
    return ", ".join(f"{name} {time['seconds']:.1f} s ({time['cores']:.2f} cores{_peak(time)})"
                     for name, time in times.items())


def _peak(time: dict[str, Any]) -> str:
    return f", peak {time['peak_rss_bytes'] / 1e9:.2f} GB" if time.get("peak_rss_bytes") else ""
