"""What a zoo-wide run passes around: a row's job, its needs, its progress events and its result.

Plain data shared by the executors, the job runner (``jobs``) and the row publisher
(``row_publish``), so that neither of those has to import the other for its types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ..errors import ZooError
from ..plan.resolve import BuildPlan

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
