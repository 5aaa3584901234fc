"""Xet storage for the test Hub: a ``local://`` CAS directory per repo, written by hf_xet itself.

The client chunks and uploads into the directory that ``xet-write-token`` names. What it
uploaded is known only from the shards it sent, so commits are checked against those: an
``lfsFile`` whose sha256 and size no uploaded shard records is refused, as on the Hub.
Downloads through Xet read the same directory; the CDN serves Xet files to clients that
have Xet disabled by reconstructing them once with hf_xet.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HubError

TOKEN_LIFETIME = 3600  # seconds; hf_xet asks again shortly before ``exp``
_ENTRY = 48  # every record of a shard's file section is 48 bytes
_BOOKEND = b"\xff" * 32
_WITH_VERIFICATION = 1 << 31
_WITH_SHA256 = 1 << 30
# hf_xet's local CAS keeps what the "server" received next to this database; its caches live elsewhere
_SERVER_SIDE_MARKER = "global_dedup_lookup.redb"


@dataclass(frozen=True)
class XetFile:
    """A file the CAS can reconstruct: its Xet hash, size and the sha256 the client declared."""

    xet_hash: str
    size: int
    sha256: str
    cas_dir: Path


def merkle_hex(raw: bytes) -> str:
    """Xet prints a 32-byte hash as four little-endian 64-bit words, each in big-endian hex."""
    return "".join(raw[i : i + 8][::-1].hex() for i in range(0, 32, 8))


def read_shard(path: Path, cas_dir: Path) -> list[XetFile]:
    """The files a shard describes, with the sha256 its metadata extension carries (others skipped)."""
    data = path.read_bytes()
    footer_size = struct.unpack_from("<Q", data, 40)[0]
    file_info_offset = struct.unpack_from("<Q", data, len(data) - footer_size + 8)[0]
    files, offset = [], file_info_offset
    while data[offset : offset + 32] != _BOOKEND:
        flags, count = struct.unpack_from("<II", data, offset + 32)
        entries = [data[offset + _ENTRY * (i + 1) : offset + _ENTRY * (i + 2)] for i in range(count)]
        size = sum(struct.unpack_from("<I", entry, 36)[0] for entry in entries)
        after = offset + _ENTRY * (count + 1) + (_ENTRY * count if flags & _WITH_VERIFICATION else 0)
        if flags & _WITH_SHA256:
            files.append(XetFile(merkle_hex(data[offset : offset + 32]), size, merkle_hex(data[after : after + 32]),
                                 cas_dir))
            after += _ENTRY
        offset = after
    return files


class XetStore:
    """One CAS directory per repo under ``root``; shards are parsed once (they never change)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._parsed: dict[Path, list[XetFile]] = {}
        self._lock = threading.Lock()
        self._rebuild_lock = threading.Lock()  # one reconstruction at a time; later requests find the bytes
        self._session = None

    def cas_dir(self, repo_id: str) -> Path:
        path = self.root / repo_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cas_url(self, repo_id: str) -> str:
        return f"local://{self.cas_dir(repo_id)}"

    def connection(self, repo_id: str, token: str) -> dict:
        """The body of ``xet-{read,write}-token``: what hf_xet reads to reach the CAS."""
        return {"accessToken": token, "exp": int(time.time()) + TOKEN_LIFETIME, "casUrl": self.cas_url(repo_id)}

    def find(self, repo_id: str, sha256: str, size: int) -> XetFile | None:
        """The file uploaded to ``repo_id``'s CAS with this sha256 and size, if any."""
        for found in self._uploaded(self.cas_dir(repo_id)):
            if found.sha256 == sha256 and found.size == size:
                return found
        return None

    def stored_bytes(self, repo_id: str) -> int:
        """Bytes of xorbs (chunk data) the CAS received for ``repo_id``: what Xet uploads cost."""
        xorbs = (p for d in self._server_dirs(self.cas_dir(repo_id)) for p in (d / "xorbs").rglob("*"))
        return sum(p.stat().st_size for p in xorbs if p.is_file() and not p.name.endswith(".tagset"))

    def _uploaded(self, cas_dir: Path) -> list[XetFile]:
        shards = sorted(p for d in self._server_dirs(cas_dir) for p in (d / "shards").glob("*.mdb"))
        with self._lock:
            for shard in shards:
                if shard not in self._parsed:
                    self._parsed[shard] = read_shard(shard, cas_dir)
            return [f for shard in shards for f in self._parsed[shard]]

    @staticmethod
    def _server_dirs(cas_dir: Path) -> list[Path]:
        return [marker.parent for marker in cas_dir.rglob(_SERVER_SIDE_MARKER)]

    def reconstruct(self, found: XetFile, target: Path, staging: Path) -> None:
        """Write ``found``'s bytes to ``target`` (for clients without Xet), checked against its sha256."""
        with self._rebuild_lock:
            if not target.exists():
                self._rebuild(found, target, staging / f"xet-{found.sha256}")

    def _rebuild(self, found: XetFile, target: Path, partial: Path) -> None:
        import hf_xet

        try:
            with self._download_session().new_file_download_group(
                endpoint=f"local://{found.cas_dir}", token="hubserver", token_expiry_unix_secs=int(time.time()) + 600
            ) as group:
                group.start_download_file(hf_xet.XetFileInfo(found.xet_hash, found.size), str(partial))
        except RuntimeError as exc:  # e.g. another process holds the local CAS open while uploading
            partial.unlink(missing_ok=True)
            raise HubError(503, f"Xet storage busy: {exc}", headers={"Retry-After": "1"}) from exc
        if _sha256_of(partial) != found.sha256:
            partial.unlink()
            raise HubError(500, f"Xet reconstruction of {found.xet_hash} does not match its sha256")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)

    def _download_session(self):
        import hf_xet

        with self._lock:
            if self._session is None:
                self._session = hf_xet.XetSession()
            return self._session


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
