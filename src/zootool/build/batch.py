"""Zoo-wide runs: build or publish the selected rows; one row's failure never stops the others.

Rows whose bundle is already built from the current plan by this zootool (``status.finished``)
are reused without starting a worker, whichever executor would have built them; the rest go
to the local executor (worker processes on this machine) or to Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from ..bundle.manifest import Manifest
from ..catalog.status import Row, finished
from ..config.zoo_data import Zoo
from ..errors import ZooError
from .jobs import BuildJob, JobEvent, JobResult, PublishRequest, failed, needs_of
from .selection import Selection

Executor = Literal["local", "ray"]
SKIPPED = {
    "over budget": "over budget: `zoo plan {model} --target {target}` names the schemes that fit",
    "unpinned": "unpinned: the recipe's Hub source names no commit (set model.source.revision)",
    "offline": "offline: HF_HUB_OFFLINE is set and its weights are not in the Hugging Face cache",
}
Emit = Callable[[JobEvent], None]


class BatchOptions(BaseModel):
    force: bool = False
    gate: bool = True
    record: bool = False
    ignore_resources: bool = False
    executor: Executor = "local"
    address: str | None = None  # Ray: the cluster to join (default: RAY_ADDRESS, else a local cluster)
    worker_storage: str | None = None  # Ray: where workers build
    max_builds: int | None = None  # local: at most this many builds at once
    publish: PublishRequest | None = None  # publish each row once gated, from where it was built


def build_rows(zoo: Zoo, selection: Selection, options: BatchOptions, emit: Emit) -> list[JobResult]:
    """Build every selected row; results for the rows, then the skipped ones, then recipes that do not resolve."""
    token = _token(options, selection)
    done: dict[tuple[str, str], JobResult] = {}
    jobs = []
    for row in selection.rows:
        manifest = None if options.force else finished(zoo, row.plan, options.gate)
        if manifest is not None:
            done[row.status.key] = _reused(zoo, row, manifest, options, token)
        else:
            jobs.append(_job(row, options))
    for result in _execute(zoo, jobs, options, emit, token):
        done[(result.model, result.target)] = result
    return [done[row.status.key] for row in selection.rows] + _not_run(selection)


def _token(options: BatchOptions, selection: Selection) -> str | None:
    """With --publish, the driver's Hub token, read before anything is built: no login fails fast."""
    if options.publish is None or not selection.rows:
        return None
    from ..publish.hub import hub_token

    return hub_token()


def publish_rows(zoo: Zoo, selection: Selection, emit: Emit, **publish) -> list[JobResult]:
    """``zoo publish`` of every selected row, one after the other (``publish``: its options, less the repo)."""
    import time

    from ..cli.publish import publish_command

    results = []
    for row in selection.rows:
        model, target = row.status.key
        emit(JobEvent(model=model, target=target, kind="start", at=time.time()))
        start = time.monotonic()
        try:
            result = _published(row, publish_command(zoo, model, target, repo=None, **publish))
        except Exception as exc:  # noqa: BLE001 - the row fails, the others go on
            result = failed(model, target, exc)
        result.seconds = round(time.monotonic() - start, 1)
        emit(JobEvent(model=model, target=target, kind="done", text=f"exit {result.exit_code}", at=time.time()))
        results.append(result)
    return results + _not_run(selection)


def _published(row: Row, answer: dict) -> JobResult:
    model, target = row.status.key
    if answer.get("dry_run"):
        outcome, message = "would publish", f"{len(answer['files'])} files, {answer['total_bytes']:,} bytes to {answer['repo']}"
    elif answer.get("commit_sha"):
        outcome, message = "published", f"{answer['repo']} commit {answer['commit_sha'][:12]} tag {answer['tag']}"
    else:
        outcome, message = "unchanged", f"{answer['repo']} already has this bundle (tag {answer['tag']})"
    return JobResult(model=model, target=target, outcome=outcome, exit_code=0, message=message,
                     bundle=f"build/{model}/{target}", plan_hash=row.plan.plan_hash)


def _job(row: Row, options: BatchOptions) -> BuildJob:
    return BuildJob(model=row.status.model, target=row.status.target, plan_hash=row.plan.plan_hash,
                    needs=needs_of(row.plan), force=options.force, gate=options.gate, record=options.record,
                    ignore_resources=options.ignore_resources, publish=options.publish)


def _reused(zoo: Zoo, row: Row, manifest: Manifest, options: BatchOptions, token: str | None) -> JobResult:
    """A row already built here; with --publish it is published from the checkout, where its bundle is."""
    from ..catalog.records import record_build

    model, target = row.status.key
    gate = manifest.gate
    try:
        if options.record:
            record_build(zoo, manifest)
    except ZooError as exc:
        return failed(model, target, exc)
    result = JobResult(model=model, target=target, outcome="reused", exit_code=6 if gate.verdict == "FAIL" else 0,
                       message=gate.line, bundle=f"build/{model}/{target}", plan_hash=manifest.plan_hash,
                       gate=gate.verdict)
    if options.publish is None or result.exit_code:
        return result
    from .row_publish import publish_row

    return publish_row(zoo.root, result, options.publish, token)


def _execute(zoo: Zoo, jobs: list[BuildJob], options: BatchOptions, emit: Emit, token: str | None) -> list[JobResult]:
    if not jobs:
        return []
    if options.executor == "ray":
        from .executor_ray import run_ray

        return run_ray(zoo.root, jobs, emit, address=options.address, storage=options.worker_storage, token=token,
                       land=lambda job, result, archive: _land(zoo, job, result, archive))
    from .executor_local import machine_capacity, run_local

    return run_local(zoo.root, jobs, emit, machine_capacity(zoo.root, options.max_builds), token)


def _land(zoo: Zoo, job: BuildJob, result: JobResult, archive: bytes) -> JobResult:
    """A Ray worker's bundle and log into the checkout, and its catalog records (as a local build writes)."""
    from ..bundle.layout import bundle_dir
    from ..bundle.manifest import read_manifest
    from ..catalog.records import record_build, record_publish
    from .transfer import land_outputs

    try:
        if not land_outputs(zoo.root, job.model, job.target, archive):
            return result
        manifest = read_manifest(bundle_dir(zoo.root, job.model, job.target))
        if job.record:
            record_build(zoo, manifest)
        done = result.published
        if done is not None and job.publish is not None and job.publish.record:
            record_publish(zoo, job.model, job.target, done.repo, done.commit_sha, done.tag, manifest=manifest)
    except ZooError as exc:
        return failed(job.model, job.target, exc)
    return result


def _not_run(selection: Selection) -> list[JobResult]:
    skipped = [JobResult(model=row.status.model, target=row.status.target, outcome="skipped", exit_code=0,
                         message=SKIPPED[row.status.state].format(model=row.status.model, target=row.status.target))
               for row in selection.skipped]
    broken = [JobResult(model=e.model, target=e.target or "-", outcome="failed", exit_code=e.exit_code,
                        message=e.message, hint=e.hint) for e in selection.errors]
    return skipped + broken
