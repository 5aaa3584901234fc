"""sha256 of files, each file version hashed once; a big file's hash can start early, on a thread.

A build hashes its model file for the manifest at the very end, after steps that leave one
core idle (the asset summary releases the interpreter lock while it parses): hashing the
9.3 GB flagship asset there costs ~6 s of wall time that a second core can absorb.
A version is the file's (path, size, mtime, inode): a file changed since is hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

KEPT_DIGESTS = 1024
_digests: OrderedDict[tuple[str, int, int, int], Future[str]] = OrderedDict()
_lock = threading.Lock()


def file_digest(path: Path, digest: Any, chunk: int = 1 << 20) -> str:
    """Feed ``path`` to a hashlib ``digest`` in chunks; its hex digest."""
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex): from :func:`hash_ahead`'s work when it hashed this version."""
    future, mine = _claim(Path(path))
    if mine:
        _compute(Path(path), future)
    return future.result()


def hash_ahead(paths: Iterable[Path]) -> None:
    """Start hashing ``paths`` on a background thread; :func:`sha256_file` then waits for it."""
    claimed = [(Path(path), future) for path in paths for future, mine in [_claim(Path(path))] if mine]
    if claimed:
        threading.Thread(target=_compute_all, args=(claimed,), name="hash-ahead", daemon=True).start()


def _claim(path: Path) -> tuple[Future[str], bool]:
    """The future of this file version's digest, and whether the caller must compute it."""
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ino)
    with _lock:
        if key in _digests:
            return _digests[key], False
        future: Future[str] = Future()
        _digests[key] = future
        while len(_digests) > KEPT_DIGESTS:
            _digests.popitem(last=False)
        return future, True


def _compute_all(claimed: list[tuple[Path, Future[str]]]) -> None:
    for path, future in claimed:
        _compute(path, future)


def _compute(path: Path, future: Future[str]) -> None:
    try:
        future.set_result(file_digest(path, hashlib.sha256()))
    except BaseException as exc:  # the waiter gets the error (e.g. the file went), as a direct hash would
        future.set_exception(exc)
