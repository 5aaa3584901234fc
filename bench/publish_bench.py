"""Publish a large random bundle to the local test Hub, then republish it unchanged.

    .venv/bin/python bench/publish_bench.py              # 1 GiB model file, through LFS
    .venv/bin/python bench/publish_bench.py --size-mb 64 --transfer xet

Prints, for each publish, the wall time and the bytes the server received (LFS uploads, or
the chunk data Xet stored, and all requests). The unchanged republish is expected to send no
file bytes and make no commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_XET_TELEMETRY_ENABLED", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from hubserver import WRITE_TOKEN, HubServer  # noqa: E402

from zootool.publish.hub import publish_bundle  # noqa: E402

NAME = "bench-model"
BENCH_REPO = "zoo-tester/Bench-CoreAI"
CHUNK = 64 * 1024 * 1024
CARD = "---\nlicense: apache-2.0\nlibrary_name: coreai\ntags: [coreai, aimodel]\n---\n\n# Benchmark bundle\n"


def _write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes and return their sha256, hashing while writing."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for offset in range(0, size, CHUNK):
            block = os.urandom(min(CHUNK, size - offset))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _write_small(bundle: Path, rel: str, data: bytes) -> dict:
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_bytes(data)
    return {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_bundle(bundle: Path, size_mb: int) -> int:
    """A bundle shaped like zootool's, with one ``size_mb`` MiB model file; returns its size."""
    model = f"gpu-pipelined/{NAME}"
    large = f"{model}/{NAME}.aimodel/main.mlirb"
    size = size_mb * 1024 * 1024
    files = [{"path": large, "size": size, "sha256": _write_random(bundle / large, size)}]
    small = {
        "README.md": CARD.encode(),
        "LICENSE": b"Apache-2.0 (benchmark copy)\n",
        "gate.json": b'{"passed": true}\n',
        f"{model}/{NAME}.aimodel/main.hash": os.urandom(32).hex().encode(),
        f"{model}/{NAME}.aimodel/metadata.json": b'{"functions": ["main"]}\n',
        f"{model}/metadata.json": json.dumps({"metadata_version": "0.2", "kind": "llm", "name": NAME}).encode(),
        f"{model}/tokenizer/tokenizer.json": b'{"model": {"type": "BPE"}}\n',
    }
    files += [_write_small(bundle, rel, data) for rel, data in small.items()]
    manifest = {"manifest_version": 1, "recipe": NAME, "target": "mac", "plan_hash": "0" * 64, "files": files}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return size


def _publish_once(hub: HubServer, bundle: Path, label: str, transfer: str) -> None:
    hub.stats.reset()
    stored_before = hub.xet_stored_bytes(BENCH_REPO)
    start = time.perf_counter()
    result = publish_bundle(bundle, BENCH_REPO, token=WRITE_TOKEN, endpoint=hub.url, tag=None)
    seconds = time.perf_counter() - start
    sent = hub.stats.bytes_in("lfs_upload") if transfer == "lfs" else hub.xet_stored_bytes(BENCH_REPO) - stored_before
    rate = f"{sent / seconds / 2**20:8.1f} MiB/s" if sent else " " * 13
    print(
        f"{label:<22}{seconds:8.2f} s  {transfer.upper()} sent {sent / 2**20:9.1f} MiB  {rate}  "
        f"all requests {hub.stats.bytes_in() / 2**20:9.2f} MiB in {hub.stats.count():3d}  "
        f"commit {result.commit_sha[:12] if result.commit_sha else 'none'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the model file in MiB (default 1024)")
    parser.add_argument("--workdir", type=Path, help="where to write the bundle (default: a temporary directory)")
    parser.add_argument("--transfer", choices=("lfs", "xet"), default="lfs", help="upload protocol (default lfs)")
    args = parser.parse_args()
    # read by huggingface_hub when first imported, which happens at the first publish below
    if args.transfer == "lfs":
        os.environ["HF_HUB_DISABLE_XET"] = "1"
    else:
        os.environ.pop("HF_HUB_DISABLE_XET", None)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp, HubServer() as hub:
        start = time.perf_counter()
        size = write_bundle(Path(tmp) / "bundle", args.size_mb)
        print(f"wrote a {size / 2**20:.0f} MiB bundle in {time.perf_counter() - start:.2f} s")
        _publish_once(hub, Path(tmp) / "bundle", "first publish", args.transfer)
        _publish_once(hub, Path(tmp) / "bundle", "unchanged republish", args.transfer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
