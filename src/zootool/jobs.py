"""One build of a zoo-wide run: what it needs, what it reports, and the function every executor calls.

``run_build_job`` is the same code whether a local worker process or a Ray task runs it: it
resolves the row's plan from the zoo checkout at ``root``, builds it (and, asked to, publishes
it), and turns every error into the row's exit code, so a failed row never stops the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .errors import GateFailedError, ZooError
from .plan import BuildPlan

Outcome = Literal["built", "reused", "published", "unchanged", "would publish", "failed", "skipped"]
EventKind = Literal["waiting", "start", "stage", "note", "done"]


class BuildNeeds(BaseModel):
    """What one build asks of the machine, from its plan (``footprint``): the largest stage's memory."""

    cpus: int
    memory_bytes: int
    disk_bytes: int


class PublishRequest(BaseModel):
    """``zoo build --publish``: each row's worker publishes its bundle once its gate passes.

    The token is never part of it: jobs are Ray task arguments and travel in the clear.
    """

    endpoint: str | None = None  # None: $HF_ENDPOINT, else the public Hub
    private: bool = False
    record: bool = False  # write the publish into zoo/records/ (where the worker's root is the checkout)


class Published(BaseModel):
    """Where a row's bundle went: what the driver needs to record the publish in the checkout."""

    repo: str
    commit_sha: str | None  # None: the Hub already had this bundle (no commit made)
    tag: str | None


class BuildJob(BaseModel):
    model: str
    target: str
    plan_hash: str
    needs: BuildNeeds
    force: bool = False
    gate: bool = True
    record: bool = False
    ignore_resources: bool = False
    publish: PublishRequest | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.target


class JobEvent(BaseModel):
    """Progress of one row: queued, started, a stage began or finished, done."""

    model: str
    target: str
    kind: EventKind
    stage: str | None = None
    text: str = ""
    at: float = 0.0  # time.time() where it happened


class JobResult(BaseModel):
    model: str
    target: str
    outcome: Outcome
    exit_code: int
    message: str = ""
    hint: str = ""
    bundle: str | None = None  # relative to the zoo root
    plan_hash: str | None = None
    gate: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = {}
    published: Published | None = None


def needs_of(plan: BuildPlan) -> BuildNeeds:
    """CPU, peak memory and disk of building ``plan``: one core, two for k-means (it clusters on threads)."""
    stages = plan.resources.stages.values()
    kmeans = any(spec.method == "kmeans" for spec in plan.scheme.quantize.values())
    return BuildNeeds(cpus=2 if kmeans else 1, memory_bytes=max(s.memory_bytes for s in stages),
                      disk_bytes=sum(s.disk_bytes for s in stages))


def worst(results: list[JobResult]) -> int:
    """The command's exit code: the highest of its rows (0 when every row succeeded)."""
    return max((r.exit_code for r in results), default=0)


def failed(model: str, target: str, error: BaseException, seconds: float = 0.0) -> JobResult:
    if isinstance(error, ZooError):
        return JobResult(model=model, target=target, outcome="failed", exit_code=error.exit_code,
                         message=error.message, hint=error.hint or "", seconds=seconds)
    return JobResult(model=model, target=target, outcome="failed", exit_code=1,
                     message=f"unexpected {type(error).__name__}: {error}",
                     hint="run again with ZOO_DEBUG=1 for a traceback", seconds=seconds)


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
    from .builder import BuildOptions, Stages, build
    from .plan import require_fits, resolve
    from .registry import get
    from .zoo_data import Zoo

    zoo = Zoo(root)
    recipe, path = get(zoo, job.model)
    plan = resolve(recipe, job.target, zoo, recipe_file=_relative(path, root))
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
    verdict = manifest["gate"]["verdict"]
    return JobResult(
        model=job.model, target=job.target, outcome="reused" if built.cached else "built",
        exit_code=GateFailedError.exit_code if verdict == "FAIL" else 0, message=manifest["gate"]["line"],
        bundle=_relative(built.bundle, root), plan_hash=manifest["plan_hash"], gate=verdict, timings=built.timings,
    )


def _kept(root: Path, job: BuildJob) -> str | None:
    from .bundle import bundle_dir

    final = bundle_dir(root, job.model, job.target)
    return _relative(final, root) if (final / "manifest.json").is_file() else None


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
