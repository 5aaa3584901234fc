"""Download routes: ``/resolve`` on the Hub origin and the blob endpoint of the CDN origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HubError, entry_not_found
from .wire import Request, Response

if TYPE_CHECKING:
    from .server import HubServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def resolve(app: HubServer, req: Request, repo: str, rev: str, path: str) -> Response:
    """Regular files are served here; LFS files redirect to the other origin, like the Hub's CDN."""
    commit = app.store.resolve(app.readable(req, repo), rev)
    entry = commit.files.get(path)
    if entry is None:
        raise entry_not_found(path, commit.sha)
    headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
    if entry.is_lfs:
        sha = entry.lfs_sha256 or ""
        headers.update(
            {
                "Location": app.blob_url(sha),
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(entry.size),
                "ETag": f'"{entry.oid}"',
            }
        )
        if entry.xet_hash and app.xet_enabled:
            headers.update(_xet_headers(app, repo, commit.sha, entry.xet_hash))
        return Response(302, headers)
    headers.update({"ETag": f'"{entry.oid}"', "Content-Type": "application/octet-stream"})
    return Response(200, headers, entry.content or b"")


def _xet_headers(app: HubServer, repo: str, commit_sha: str, xet_hash: str) -> dict[str, str]:
    """What a Xet-enabled client reads instead of following the redirect: the hash and where to get a token."""
    refresh = f"{app.url}/api/models/{repo}/xet-read-token/{commit_sha}"
    return {"X-Xet-Hash": xet_hash, "X-Xet-Refresh-Route": refresh, "Link": f'<{refresh}>; rel="xet-auth"'}


def cdn_blob(app: HubServer, req: Request, oid: str) -> Response:
    if req.arg("sig") != app.signature("blob", oid):
        raise HubError(403, "Invalid or expired download signature")
    path = app.store.object_path(oid)
    if not path.exists():
        _reconstruct_from_xet(app, oid, path)
    size = path.stat().st_size
    headers = {"ETag": f'"{oid}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    span = _span(req.headers.get("Range"), size)
    if span is None:
        return Response(200, headers, file=path, span=(0, size))
    start, length = span
    headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return Response(206, headers, file=path, span=span)


def _reconstruct_from_xet(app: HubServer, oid: str, path: Path) -> None:
    """A file only Xet holds, asked for by a client without Xet: rebuild it once, as the Hub's bridge does."""
    found = app.store.xet_file(oid)
    if found is None:
        raise HubError(404, "No such object")
    app.xet.reconstruct(found, path, app.store.staging_dir())


def _span(header: str | None, size: int) -> tuple[int, int] | None:
    """Offset and length for a single ``bytes=a-b`` range; None means the whole file."""
    found = _RANGE.fullmatch((header or "").strip())
    if found is None or not (found.group(1) or found.group(2)):
        return None
    first, last = found.group(1), found.group(2)
    if not first:
        start = max(size - int(last), 0)
        return start, size - start
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end - start + 1
