"""Ordered results of independent tasks computed on a few threads, with bounded look-ahead.

Torch's own intra-op threads are turned down to one while the tasks run: each task is a
small piece of work, and on a shared machine OpenMP threads that spin for a busy core make
elementwise ops several times slower. One task per core instead keeps every core busy.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
MAX_WORKERS = 4


def worker_count() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def in_order(tasks: Iterable[Callable[[], T]], workers: int, ahead: int) -> Iterator[T]:
    """Run ``tasks`` on ``workers`` threads, at most ``ahead`` pending; results in task order."""
    with ThreadPoolExecutor(workers) as pool, torch_threads(1):
        pending: deque[Future[T]] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op thread count set to ``count`` for the block (it is process-wide)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
