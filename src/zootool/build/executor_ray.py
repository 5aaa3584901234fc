"""Run zoo-wide builds on a Ray cluster (``pip install 'zootool[cluster]'``): one Ray task per build.

Each task asks Ray for the CPUs and the memory its plan predicts (``jobs.needs_of``), so Ray
packs builds onto nodes as the local executor packs them onto this machine. A worker builds
in its own storage (``--worker-storage``, else ``$ZOO_WORKER_STORAGE``, else a folder in its
temporary directory): a fresh zoo root per task made from the checkout's recipes and zoo data,
sharing one ``.zoo-cache`` per node (checkpoints, fp16 ceilings). With ``--publish`` the task
also publishes its gated bundle from there (``row_publish``). The task returns the row's
result, bundle and log; the driver lands them in the checkout and writes the catalog records
(the build's, and the publish's) there. Progress comes back through a Ray queue. Ray is imported only here, only when used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ..errors import BackendUnavailableError
from .jobs import BuildJob, JobEvent, JobResult

STORAGE_ENV = "ZOO_WORKER_STORAGE"
POLL_SECONDS = 0.3


class ClusterUnavailableError(BackendUnavailableError):
    default_hint = "install the cluster extra: pip install 'zootool[cluster]'"


def run_ray(root: Path, jobs: list[BuildJob], emit: Callable[[JobEvent], None], *, address: str | None,
            storage: str | None, land: Callable[[BuildJob, JobResult, bytes], JobResult],
            token: str | None = None) -> list[JobResult]:
    """Submit every job, land each result as it finishes (``land``), return results in the jobs' order.

    ``token`` (for jobs that publish) goes into Ray's object store once, as a ``SecretStr``: each
    task gets a reference to it, so it is in no task's arguments, runtime env or environment.
    """
    _reachable(address)
    ray = _ray()
    from ray.util.queue import Queue

    from .transfer import pack_zoo

    connected_here = not ray.is_initialized()
    if connected_here:
        _join(ray, address)
    try:
        events = Queue(actor_options={"num_cpus": 0})
        payload = ray.put(pack_zoo(root))
        secret = ray.put(SecretStr(token) if token else None)
        task = ray.remote(max_retries=0)(build_task)
        largest = _largest_node(ray)
        results: dict[tuple[str, str], JobResult] = {}
        pending: dict[Any, BuildJob] = {}
        for job in jobs:
            emit(JobEvent(model=job.model, target=job.target, kind="waiting", at=time.time()))
            options = task_resources(job, largest) | {"name": f"zoo-build:{job.model}:{job.target}"}
            pending[task.options(**options).remote(payload, job.model_dump(), storage, events, secret)] = job
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            _drain(events, emit)
            for ref in ready:
                job = pending.pop(ref)
                results[job.key] = _collect(ray, ref, job, land)
        _drain(events, emit)
        return [results[job.key] for job in jobs]
    finally:
        if connected_here:
            ray.shutdown()


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterUnavailableError("--executor ray: Ray is not installed") from None
    return ray


def _reachable(address: str | None) -> None:
    """Fail in seconds, not after Ray's minute of retries, when no cluster answers where we are sent."""
    from .cluster_address import require_cluster

    if address:
        require_cluster(address)
    elif os.environ.get("RAY_ADDRESS"):
        require_cluster(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")


def _join(ray, address: str | None) -> None:
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
        raise ClusterUnavailableError(f"--executor ray: cannot join {where}: {str(exc).splitlines()[0]}",
                                      "start the cluster (ray start --head) and pass its --address") from None


def _largest_node(ray) -> dict[str, int]:
    """The most CPUs and memory any one alive node offers (a task larger than that never starts)."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    return {"CPU": int(max((n.get("CPU", 0) for n in nodes), default=0)),
            "memory": int(max((n.get("memory", 0) for n in nodes), default=0))}


def task_resources(job: BuildJob, largest: dict[str, int]) -> dict[str, int]:
    """The Ray resources of one build: its plan's CPUs and peak memory, capped at the largest node.

    A build larger than every node thus asks for a whole node and runs alone there, where its own
    pre-flight refuses it (exit 12) unless --ignore-resources, as on this machine; asked for in
    full, Ray would keep it pending for ever.
    """
    return {"num_cpus": max(1, min(job.needs.cpus, largest["CPU"])),
            "memory": max(1, min(job.needs.memory_bytes, largest["memory"]))}


def _collect(ray, ref, job: BuildJob, land) -> JobResult:
    from ray.exceptions import RayError

    try:
        data, archive = ray.get(ref)
    except RayError as exc:  # the worker died, was killed, or could not run the task
        return JobResult(model=job.model, target=job.target, outcome="failed", exit_code=5,
                         message=f"the Ray task failed: {str(exc).splitlines()[0]}",
                         hint="the node's out-of-memory killer is a likely cause; see the Ray logs")
    return land(job, JobResult.model_validate(data), archive)


def _drain(events, emit: Callable[[JobEvent], None]) -> None:
    count = events.qsize()
    if count:
        for data in events.get_nowait_batch(count):
            emit(JobEvent.model_validate(data))


def build_task(payload: bytes, job_data: dict, storage: str | None, events,
               secret: SecretStr | None = None) -> tuple[dict, bytes]:
    """On a Ray worker: build (and publish) one row in the worker's own storage; return (result, bundle and log)."""
    from .jobs import run_build_job
    from .transfer import pack_outputs, unpack

    job = _driver_records(BuildJob.model_validate(job_data))
    base = Path(storage or os.environ.get(STORAGE_ENV) or Path(tempfile.gettempdir()) / "zootool-worker")
    root = base / "jobs" / f"{job.model}-{job.target}-{uuid.uuid4().hex[:8]}"
    unpack(payload, root)
    (base / "cache").mkdir(parents=True, exist_ok=True)
    (root / ".zoo-cache").symlink_to(base / "cache", target_is_directory=True)

    def emit(event: JobEvent) -> None:
        try:
            events.put_nowait(event.model_dump())
        except Exception:  # noqa: BLE001 - progress is best effort; the build goes on
            pass

    try:
        result = run_build_job(root, job, emit, secret.get_secret_value() if secret else None)
        return result.model_dump(), pack_outputs(root, job.model, job.target)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _driver_records(job: BuildJob) -> BuildJob:
    """The worker's zoo root is thrown away: the driver writes the build's and the publish's records."""
    publish = job.publish.model_copy(update={"record": False}) if job.publish else None
    return job.model_copy(update={"record": False, "publish": publish})
