"""``manifest.json``: every bundle file's size and sha256, the plan hash and tool versions.

A manifest carries no local paths and no user names: it is published as is.
"""

from __future__ import annotations

import json
import os
import platform as _platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..fetch.provenance import ConvertedFrom
from .digests import file_digest, sha256_file  # noqa: F401 - publish hashes with these too

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# What a published bundle may take from the command line: a pinned upstream revision. Any other
# override (--quant, --kernel) makes a local experiment, which zoo publish refuses.
PUBLISHED_OVERRIDES = frozenset({"source.revision"})
TOOLS = (
    "zootool", "coreai-torch", "coreai-core", "coreai-opt", "coremltools", "torch", "transformers", "huggingface_hub",
)


class FileEntry(BaseModel):
    """One bundle file: its path relative to the bundle, size and sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str
    size: int
    sha256: str


class ManifestSource(BaseModel):
    """Where the weights came from: a pinned Hub revision or a generator seed.

    ``converted_from``: the checkpoint was converted from another file (a GGUF) rather than
    read from the Hub revision; the revision then names the upstream model, not these weights.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    hub: str | None = None
    revision: str | None = None
    generated_seed: int | None = None
    converted_from: ConvertedFrom | None = None


class BundleSizes(BaseModel):
    """Predicted and measured sizes; ``bundle_bytes`` is measured before the manifest exists."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    estimated_bytes: int | None = None
    model_bytes: int | None = None
    budget_bytes: int | None = None
    bundle_bytes: int | None = None


class ProgramFacts(BaseModel):
    """The converted program as saved: its op count (constants included), and the most common ops."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ops: int
    most_common: dict[str, int] = {}


class GateSummary(BaseModel):
    """The gate's verdict as the manifest keeps it; the transcript itself is ``gate.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    verdict: str | None = None
    line: str | None = None
    passed: bool = False
    flips: int | None = None
    fp16_flips: int | None = None
    introduced: int | None = None
    positions: int | None = None
    candidate_runtime: str | None = None


class Manifest(BaseModel):
    """``manifest.json``: what build writes and verify, publish, status and records read.

    The build fields are optional so that a manifest written by hand (or by an older
    zootool) still lists its files; stages that need them say which are missing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    manifest_version: Literal[1] = MANIFEST_VERSION
    recipe: str | None = None
    target: str | None = None
    platform: str | None = None
    plan_hash: str | None = None
    build_key: str | None = None
    bundle_version: str | None = None
    scheme: str | None = None
    kernel: str | None = None
    model_dir: str | None = None
    source: ManifestSource | None = None
    # LICENSE is the upstream's own file, or the zoo's copy of a standard license's text (none upstream)
    license_text: Literal["upstream", "zoo"] | None = None
    size: BundleSizes | None = None
    program: ProgramFacts | None = None
    gate: GateSummary | None = None
    publishable: bool = False
    overrides: dict[str, Any] = {}
    tool_versions: dict[str, str] = {}
    total_bytes: int = 0
    files: list[FileEntry] = []

    @property
    def local_overrides(self) -> list[str]:
        return local_overrides(self.overrides)

    @property
    def gate_line(self) -> str | None:
        return self.gate.line if self.gate else None

    @property
    def sizes(self) -> BundleSizes:
        return self.size or BundleSizes()


def program_facts(ops: dict[str, int], kept: int = 10) -> ProgramFacts:
    """``ops`` (op name -> count) as the manifest keeps them: the total and the ``kept`` most common."""
    common = sorted(ops.items(), key=lambda item: (-item[1], item[0]))[:kept]
    return ProgramFacts(ops=sum(ops.values()), most_common=dict(common))


def local_overrides(overrides: dict[str, Any]) -> list[str]:
    """The command-line overrides that keep a build from being published (all but ``PUBLISHED_OVERRIDES``)."""
    return sorted(key for key in overrides if key not in PUBLISHED_OVERRIDES)


def publish_refusals(manifest: Manifest) -> list[str]:
    """Why ``zoo publish`` refuses a bundle that verifies, one sentence each (empty: it publishes it).

    The one rule ``zoo build``, ``zoo verify`` and ``zoo publish`` all state."""
    gate = manifest.gate
    refusals = [] if gate and gate.passed else [
        f"gate: {manifest.gate_line or 'missing'}: only a bundle that passed its gate is published"]
    if manifest.local_overrides:
        refusals.append(f"built with command-line overrides ({', '.join(manifest.local_overrides)}): the zoo "
                        "publishes what the recipe says")
    return refusals


def bundle_files(root: Path) -> list[Path]:
    """Every regular file below ``root`` except the manifest, sorted, as relative paths."""
    files = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return sorted(p for p in files if p.as_posix() != MANIFEST)


def file_entries(root: Path) -> list[FileEntry]:
    return [
        FileEntry(path=rel.as_posix(), size=(root / rel).stat().st_size, sha256=sha256_file(root / rel))
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


def write_manifest(root: Path, build: Manifest) -> Manifest:
    """Hash the bundle and write its manifest; ``build`` holds the recipe/plan/size/gate fields."""
    files = file_entries(root)
    manifest = build.model_copy(update={
        "tool_versions": tool_versions(), "total_bytes": sum(f.size for f in files), "files": files,
    })
    write_json_atomic(root / MANIFEST, manifest.model_dump(mode="json"))
    return manifest


def read_manifest(root: Path) -> Manifest:
    """The bundle's manifest; ``OSError`` or ``ValueError`` (bad JSON, bad fields) when unreadable."""
    return Manifest.model_validate_json((root / MANIFEST).read_bytes())


def mismatches(root: Path, manifest: Manifest) -> list[str]:
    """Differences between the files on disk and the manifest, one sentence each."""
    problems = []
    listed = {entry.path: entry for entry in manifest.files}
    present = {rel.as_posix() for rel in bundle_files(root)}
    for path in sorted(present - set(listed)):
        problems.append(f"{path}: not listed in the manifest (stray file)")
    for path, entry in sorted(listed.items()):
        if path not in present:
            problems.append(f"{path}: listed in the manifest but missing")
        elif (root / path).stat().st_size != entry.size:
            problems.append(f"{path}: size {(root / path).stat().st_size} != manifest {entry.size}")
        elif sha256_file(root / path) != entry.sha256:
            problems.append(f"{path}: sha256 differs from the manifest (changed since the build: damaged or edited)")
    return problems
