"""One build of a zoo-wide run: what it needs, what it reports, and the function every executor calls.

``run_build_job`` is the same code whether a local worker process or a Ray task runs it: it
resolves the row's plan from the zoo checkout at ``root``, builds it (and, asked to, publishes
it), and turns every error into the row's exit code, so a failed row never stops the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..errors import GateFailedError
from ..paths import relative
from .job_models import (
    BuildJob, BuildNeeds, EventKind, JobEvent, JobResult, PublishRequest, Published, failed, needs_of, worst,
)

__all__ = [
    "BuildJob", "BuildNeeds", "JobEvent", "JobResult", "PublishRequest", "Published", "failed", "needs_of",
    "run_build_job", "worst",
]


def run_build_job(root: Path, job: BuildJob, emit: Callable[[JobEvent], None], token: str | None = None) -> JobResult:
    """Build one row of the zoo at ``root`` (and publish it, with ``job.publish``, using ``token``);
    never raises a ``ZooError`` (it becomes the result)."""
    def event(kind: EventKind, stage: str | None = None, text: str = "") -> None:
        emit(JobEvent(model=job.model, target=job.target, kind=kind, stage=stage, text=text, at=time.time()))

    start = time.monotonic()
    event("start")
    try:
        result = _build(root, job, event)
    except Exception as exc:  # noqa: BLE001 - every failure is this row's, reported, never raised
        result = failed(job.model, job.target, exc)
        result.bundle = _kept(root, job)
    if job.publish is not None and result.exit_code == 0:
        from .row_publish import publish_row

        event("stage", "publish")
        result = publish_row(root, result, job.publish, token)
    result.seconds = round(time.monotonic() - start, 1)
    event("done", text=f"exit {result.exit_code}")
    return result


def _build(root: Path, job: BuildJob, event) -> JobResult:
    from .pipeline import BuildOptions, Stages, build
    from ..plan.fits import require_fits
    from ..plan.resolve import resolve
    from ..config.registry import get
    from ..config.zoo_data import Zoo

    zoo = Zoo(root)
    recipe, path = get(zoo, job.model)
    plan = resolve(recipe, job.target, zoo, recipe_file=relative(path, root))
    require_fits(plan, recipe, zoo)

    def observer(stage: str, kind: str, seconds: float) -> None:
        if kind == "start":
            event("stage", stage)
        elif kind.startswith("note:"):
            event("note", stage, kind[5:])

    options = BuildOptions(force=job.force, gate=job.gate, record=job.record, ignore_resources=job.ignore_resources)
    try:
        built = build(plan, zoo, options, Stages(observer))
    except GateFailedError as exc:  # the bundle is kept (not publishable): the row reports where
        result = failed(job.model, job.target, exc)
        result.bundle, result.plan_hash, result.gate = _kept(root, job), plan.plan_hash, "FAIL"
        return result
    manifest = built.manifest
    verdict = manifest.gate.verdict
    return JobResult(
        model=job.model, target=job.target, outcome="reused" if built.cached else "built",
        exit_code=GateFailedError.exit_code if verdict == "FAIL" else 0, message=manifest.gate.line,
        bundle=relative(built.bundle, root), plan_hash=manifest.plan_hash, gate=verdict, timings=built.timings,
    )


def _kept(root: Path, job: BuildJob) -> str | None:
    from ..bundle.layout import bundle_dir

    final = bundle_dir(root, job.model, job.target)
    return relative(final, root) if (final / "manifest.json").is_file() else None
