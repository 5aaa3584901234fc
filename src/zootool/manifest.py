"""``manifest.json``: every bundle file's size and sha256, the plan hash and tool versions.

A manifest carries no local paths and no user names: it is published as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TOOLS = (
    "zootool", "coreai-torch", "coreai-core", "coreai-opt", "coremltools", "torch", "transformers", "huggingface_hub",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(root: Path) -> list[Path]:
    """Every regular file below ``root`` except the manifest, sorted, as relative paths."""
    files = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return sorted(p for p in files if p.as_posix() != MANIFEST)


def file_entries(root: Path) -> list[dict[str, Any]]:
    return [
        {"path": rel.as_posix(), "size": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)}
        for rel in bundle_files(root)
    ]


def tool_versions() -> dict[str, str]:
    versions = {"python": _platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(root: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Hash the bundle and write its manifest; ``fields`` adds recipe/plan/size/gate data."""
    files = file_entries(root)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        **fields,
        "tool_versions": tool_versions(),
        "total_bytes": sum(f["size"] for f in files),
        "files": files,
    }
    write_json_atomic(root / MANIFEST, manifest)
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    with (root / MANIFEST).open() as handle:
        return json.load(handle)


def mismatches(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Differences between the files on disk and the manifest, one sentence each."""
    problems = []
    listed = {entry["path"]: entry for entry in manifest.get("files", [])}
    present = {rel.as_posix() for rel in bundle_files(root)}
    for path in sorted(present - set(listed)):
        problems.append(f"{path}: not listed in the manifest (stray file)")
    for path, entry in sorted(listed.items()):
        if path not in present:
            problems.append(f"{path}: listed in the manifest but missing")
        elif (root / path).stat().st_size != entry["size"]:
            problems.append(f"{path}: size {(root / path).stat().st_size} != manifest {entry['size']}")
        elif sha256_file(root / path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    return problems
