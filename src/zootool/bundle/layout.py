"""Bundle directories: where they live, atomic assembly, and the per-target build lock.

A bundle is built in a hidden sibling directory and renamed into place only when
complete, so an interrupted or failed build never leaves a bundle that looks done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import BuildLockedError

PIPELINE_DIR = "gpu-pipelined"


def bundle_dir(zoo_root: Path, recipe_id: str, target: str) -> Path:
    return zoo_root / "build" / recipe_id / target


def model_folders(path: Path) -> list[Path]:
    """The folders an engine loads at ``path``: ``path`` itself when it holds ``metadata.json`` (a model
    folder, as Apple's exporter writes one), else those of a Hub layout (``gpu-pipelined/<name>/``)."""
    if _is_model_folder(path):
        return [path]
    return sorted(found.parent for found in path.glob("*/*/metadata.json") if _is_model_folder(found.parent))


def _is_model_folder(path: Path) -> bool:
    # An asset (.aimodel, .mlpackage) holds a metadata.json of its own: not the LanguageBundle's.
    return (path / "metadata.json").is_file() and path.suffix not in (".aimodel", ".mlpackage")


def asset_name(model_name: str, scheme_id: str) -> str:
    """The folder and file stem inside ``gpu-pipelined/``, e.g. ``LFM2.5-8B-A1B-sym8``."""
    return f"{model_name}-{scheme_id}"


@contextlib.contextmanager
def build_lock(final: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside the bundle; a live holder refuses a second build."""
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.parent / f".{final.name}.lock"
    _acquire(lock)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _acquire(lock: Path) -> None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(lock)
            if holder and _alive(holder):
                raise BuildLockedError(f"{lock}: another build (pid {holder}) is building this target") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return
    raise BuildLockedError(f"{lock}: could not take the build lock")


def _holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staging(final: Path) -> Iterator[Path]:
    """Yield an empty staging dir; on success it replaces ``final``, on failure it is removed.

    Call it under ``build_lock``: it clears partial directories that killed builds left.
    """
    for leftover in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)  # an interrupted build's; we hold the lock
    stage = final.parent / f".{final.name}.partial-{os.getpid()}"
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_into_place(stage, final)


def _swap_into_place(stage: Path, final: Path) -> None:
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    stage.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_record(zoo_root: Path, recipe_id: str, target: str) -> Path:
    """``.zoo-cache/builds/<id>/<target>.checkpoint.json``: the local checkpoint a build read.

    Kept in the cache, never in a bundle (local paths are not published); it lets ``zoo gate``
    reuse the same checkpoint (``--weights`` folder or cache) without fetching it again.
    """
    return zoo_root / ".zoo-cache" / "builds" / recipe_id / f"{target}.checkpoint.json"


def remember_checkpoint(record: Path, checkpoint: Path) -> None:
    from .manifest import write_json_atomic

    write_json_atomic(record, {"checkpoint": str(Path(checkpoint).resolve())})


def recorded_checkpoint(record: Path) -> Path | None:
    """The checkpoint the last build read, if it is still there."""
    import json

    try:
        folder = Path(json.loads(record.read_text())["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if folder.is_dir() else None
