"""The offline half of publishing: which bundle files a publish would consider.

Reads ``manifest.json`` and checks every listed file against it (present, inside the
bundle, same size). Needs no network and no huggingface_hub; ``zootool.publish.hub``
re-exports :func:`plan_publish`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, ValidationError

from ..bundle.manifest import MANIFEST as MANIFEST_NAME
from ..bundle.manifest import FileEntry, Manifest, file_digest, sha256_file
from ..errors import VerifyError

_SHA256 = re.compile(r"[0-9a-f]{64}")


# One bundle file that takes part in a publish: a manifest entry, checked against the disk.
PlannedFile = FileEntry


class PublishPlan(BaseModel):
    """What a publish would consider uploading; built offline from ``manifest.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    files: tuple[PlannedFile, ...]
    total_bytes: int


def plan_publish(bundle_dir: Path, *, allow_patterns: list[str] | None = None) -> PublishPlan:
    """List the files a publish would consider, after checking them against the manifest.

    Needs no network. Only files listed in ``manifest.json`` (plus the manifest itself)
    are ever published, so a stray checkpoint in the bundle directory is never uploaded.
    """
    bundle_dir = Path(bundle_dir)
    manifest = _read_manifest(bundle_dir)
    planned: dict[str, PlannedFile] = {}
    for item in manifest.files:
        entry = _checked_entry(bundle_dir, item)
        if entry.path in planned:
            raise VerifyError(f"{MANIFEST_NAME} lists {entry.path} twice")
        planned[entry.path] = entry
    planned[MANIFEST_NAME] = _local_entry(bundle_dir, MANIFEST_NAME)
    files = tuple(f for f in planned.values() if selected(f.path, allow_patterns))
    if not files:
        raise VerifyError(f"no bundle file matches the allow patterns {allow_patterns}")
    return PublishPlan(files=files, total_bytes=sum(f.size for f in files))


def _read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_NAME
    hint = "build the bundle with `zoo build`, which writes manifest.json"
    if not path.is_file():
        raise VerifyError(f"{bundle_dir}: no {MANIFEST_NAME}; is this a bundle directory?", hint)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyError(f"{path}: not valid JSON ({exc})", hint) from exc
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != 1:
        raise VerifyError(f"{path}: expected manifest_version 1", hint)
    if not isinstance(manifest.get("files"), list):
        raise VerifyError(f"{path}: 'files' must be a list of {{path, size, sha256}}", hint)
    try:
        return Manifest.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise VerifyError(f"{MANIFEST_NAME}: malformed entry at {where} ({first['msg']})", hint) from None


def _checked_entry(bundle_dir: Path, item: FileEntry) -> PlannedFile:
    path, size, sha = item.path, item.size, item.sha256
    _check_relative(path)
    local = bundle_dir / path
    if not local.is_file():
        raise VerifyError(f"{path} is listed in {MANIFEST_NAME} but missing from the bundle")
    if not local.resolve().is_relative_to(bundle_dir.resolve()):
        raise VerifyError(f"{path} resolves outside the bundle (symlink?); refusing to publish it")
    if local.stat().st_size != size:
        raise VerifyError(f"{path}: size on disk differs from {MANIFEST_NAME}", "rebuild the bundle")
    if not _SHA256.fullmatch(sha):
        raise VerifyError(f"{path}: sha256 in {MANIFEST_NAME} is not 64 lowercase hex digits")
    return PlannedFile(path=path, size=size, sha256=sha)


def _check_relative(path: str) -> None:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "\\" in path or any(p in ("..", ".") for p in parts):
        raise VerifyError(f"{MANIFEST_NAME}: {path!r} is not a plain relative path inside the bundle")


def _local_entry(bundle_dir: Path, path: str) -> PlannedFile:
    local = bundle_dir / path
    return PlannedFile(path=path, size=local.stat().st_size, sha256=sha256_file(local))


def selected(path: str, patterns: list[str] | None) -> bool:
    """Same matching as huggingface_hub's allow_patterns: fnmatch, a trailing ``/`` means a folder."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(path, p + "*" if p.endswith("/") else p) for p in patterns)


def git_blob_oid(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\x00" % path.stat().st_size)
    return file_digest(path, digest)
