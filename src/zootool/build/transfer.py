"""What travels between the zoo checkout and a remote worker: the zoo in, a bundle and its log out.

In: ``recipes/``, ``zoo/`` and ``cards/`` of the checkout as one tar (a few hundred kB); never
``build/`` or ``.zoo-cache/``. Out: the row's bundle (``build/<id>/<target>/``) and its log,
landed in the checkout the way a local build lands: under the target's build lock, through a
staging directory renamed into place.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ..bundle.layout import build_lock, bundle_dir, staging

ZOO_PARTS = ("recipes", "zoo", "cards")
BUNDLE = "bundle"
LOG = "build.log"


def pack_zoo(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for part in ZOO_PARTS:
            if (root / part).exists():
                tar.add(root / part, arcname=part)
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter="data")


def pack_outputs(root: Path, model: str, target: str) -> bytes:
    """The row's bundle (if one was kept) and its log, from a worker's zoo root."""
    final = bundle_dir(root, model, target)
    log = final.parent / f"{final.name}.log"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:  # bundles are mostly incompressible weights
        if (final / "manifest.json").is_file():
            tar.add(final, arcname=BUNDLE)
        if log.is_file():
            tar.add(log, arcname=LOG)
    return buffer.getvalue()


def land_outputs(root: Path, model: str, target: str, data: bytes) -> bool:
    """Put a worker's bundle and log into the checkout at ``root``; True when a bundle came back."""
    final = bundle_dir(root, model, target)
    with build_lock(final), tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        names = set(tar.getnames())
        if LOG in names:
            _extract_file(tar, LOG, final.parent / f"{final.name}.log")
        if BUNDLE not in names:
            return False
        with staging(final) as stage:
            members = [m for m in tar.getmembers() if m.name.startswith(f"{BUNDLE}/")]
            for member in members:
                member.name = member.name[len(BUNDLE) + 1:]
            tar.extractall(stage, members=members, filter="data")
    return True


def _extract_file(tar: tarfile.TarFile, name: str, dest: Path) -> None:
    source = tar.extractfile(name)
    if source is None:
        return
    partial = dest.with_name(f".{dest.name}.partial")
    partial.write_bytes(source.read())
    partial.replace(dest)
