"""Run zoo-wide builds on this machine: one worker process per build, packed by predicted needs.

A build starts when its declared CPUs, predicted peak memory and predicted disk fit beside the
builds already running (``Capacity``: the machine's cores; ``MemAvailable`` or
``ZOO_AVAILABLE_MEMORY_BYTES``; the free disk of the zoo checkout's file system or
``ZOO_FREE_DISK_BYTES``). Memory and disk are read once at the start, since running builds
lower them; what finished builds left on disk is seen by each stage's own pre-flight, which
reads the disk again as the stage starts. A build larger than the whole machine waits until it
would run alone, and then its own pre-flight refuses it (exit 12) unless ``--ignore-resources``:
it never crowds out its neighbours. Each build runs in a spawned process because a build
redirects its process's file descriptors to its log.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from .jobs import BuildJob, JobEvent, JobResult

POLL_SECONDS = 0.2
RESULT_GRACE_SECONDS = 5.0  # a worker that exited may still be flushing its result into the queue


class Capacity(BaseModel):
    cpus: int
    memory_bytes: int | None  # None: this system does not say; memory is not packed
    disk_bytes: int | None = None  # None: disk is not packed


def machine_capacity(root: Path, max_builds: int | None = None) -> Capacity:
    """This machine's cores (at most ``max_builds``), available memory and the zoo root's free disk."""
    from .resources import machine

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    here = machine({"build": root})
    return Capacity(cpus=min(cpus, max_builds) if max_builds else cpus, memory_bytes=here.memory_bytes,
                    disk_bytes=here.folders["build"].free_bytes)


def startable(waiting: list[BuildJob], running: list[BuildJob], capacity: Capacity) -> list[BuildJob]:
    """The waiting builds to start now, in order: each that fits beside those running and chosen."""
    chosen: list[BuildJob] = []
    for job in waiting:
        if _fits(job, running + chosen, capacity):
            chosen.append(job)
    return chosen


def _fits(job: BuildJob, busy: list[BuildJob], capacity: Capacity) -> bool:
    if not busy:
        return True  # alone it may start; its pre-flight refuses what this machine can never hold
    cpus = min(job.needs.cpus, capacity.cpus) + sum(min(b.needs.cpus, capacity.cpus) for b in busy)
    if cpus > capacity.cpus:
        return False
    memory = job.needs.memory_bytes + sum(b.needs.memory_bytes for b in busy)
    if capacity.memory_bytes is not None and memory > capacity.memory_bytes:
        return False
    disk = job.needs.disk_bytes + sum(b.needs.disk_bytes for b in busy)
    return capacity.disk_bytes is None or disk <= capacity.disk_bytes


def run_local(root: Path, jobs: list[BuildJob], emit: Callable[[JobEvent], None], capacity: Capacity,
              token: str | None = None) -> list[JobResult]:
    """Build every job in worker processes; results in the jobs' order.

    ``token`` (for jobs that publish) reaches each worker through the pipe that spawns it,
    never through its command line or a log.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    waiting = list(jobs)
    running: dict[tuple[str, str], tuple[BuildJob, multiprocessing.process.BaseProcess]] = {}
    results: dict[tuple[str, str], JobResult] = {}
    for job in jobs:
        emit(JobEvent(model=job.model, target=job.target, kind="waiting", at=time.time()))
    try:
        while waiting or running:
            for job in startable(waiting, [j for j, _ in running.values()], capacity):
                waiting.remove(job)
                process = context.Process(target=worker_main, args=(str(root), job.model_dump(), events, token),
                                          name=f"zoo-build-{job.model}-{job.target}")
                process.start()
                running[job.key] = (job, process)
            _drain(events, emit, results, POLL_SECONDS)
            for key, (job, process) in list(running.items()):
                if not process.is_alive():
                    _reap(job, process, events, emit, results)
                    del running[key]
    finally:
        for _, process in running.values():
            process.terminate()  # interrupted: the builds' staging directories are cleaned by their handlers
            process.join(10)
    return [results[job.key] for job in jobs]


def _drain(events, emit, results: dict, timeout: float) -> None:
    """Pass on every message waiting in the queue (waiting up to ``timeout`` for the first)."""
    try:
        message = events.get(timeout=timeout)
    except queue_module.Empty:
        return
    while True:
        kind, data = message
        if kind == "event":
            emit(JobEvent.model_validate(data))
        else:
            result = JobResult.model_validate(data)
            results[(result.model, result.target)] = result
        try:
            message = events.get_nowait()
        except queue_module.Empty:
            return


def _reap(job: BuildJob, process, events, emit, results: dict) -> None:
    process.join()
    deadline = time.monotonic() + RESULT_GRACE_SECONDS
    while job.key not in results and time.monotonic() < deadline:
        _drain(events, emit, results, POLL_SECONDS)
    if job.key not in results:
        code = process.exitcode
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with status {code}"
        results[job.key] = JobResult(
            model=job.model, target=job.target, outcome="failed", exit_code=5,
            message=f"the build's worker process {how} before it reported",
            hint="the out-of-memory killer is a likely cause: see dmesg; --jobs 1 builds one at a time",
        )
        emit(JobEvent(model=job.model, target=job.target, kind="done", text="exit 5", at=time.time()))


def worker_main(root: str, job_data: dict, events, token: str | None = None) -> None:
    """A worker process: build one job, sending its events and its result through ``events``."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    _detach_output()
    from .jobs import run_build_job

    job = BuildJob.model_validate(job_data)
    result = run_build_job(Path(root), job, lambda event: events.put(("event", event.model_dump())), token)
    events.put(("result", result.model_dump()))
    events.close()
    events.join_thread()


def _detach_output() -> None:
    """Chatter outside a build's own log would break the parent's live table (kept with ZOO_DEBUG=1)."""
    if os.environ.get("ZOO_DEBUG") == "1":
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
