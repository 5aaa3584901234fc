"""Upload routes: preupload, LFS batch + basic transfer + verify, and the NDJSON commit."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HubError
from .rules import LFS_SIZE_THRESHOLD, is_ignored, lfs_patterns, looks_binary, upload_mode
from .store import AddFile, Commit, DeletePath, FileEntry, Operation, Repo
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .server import HubServer

LFS_JSON = {"Content-Type": "application/vnd.git-lfs+json"}
_OID = re.compile(r"[0-9a-f]{64}")


def _text_of(commit: Commit, path: str) -> str | None:
    entry = commit.files.get(path)
    return entry.content.decode(errors="replace") if entry and entry.content is not None else None


def preupload(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    found = app.writable(req, repo)
    if req.arg("create_pr"):
        raise HubError(400, "Pull requests are not supported by this test Hub")
    head = app.store.branch_head(found, rev)
    data = req.json() or {}
    patterns = lfs_patterns(_text_of(head, ".gitattributes") or "")
    gitignore = data.get("gitIgnore") or _text_of(head, ".gitignore")
    files = [_preupload_one(item, head, patterns, gitignore) for item in data.get("files", [])]
    return json_response({"files": files, "commitOid": head.sha})


def _preupload_one(item: dict, head: Commit, patterns: list[str], gitignore: str | None) -> dict:
    path = str(item.get("path", ""))
    sample = base64.b64decode(item.get("sample", ""))
    mode = upload_mode(path, int(item.get("size", 0)), sample, patterns)
    existing = head.files.get(path)
    answer = {"path": path, "uploadMode": mode, "shouldIgnore": is_ignored(path, gitignore)}
    if existing is not None:
        # the client skips a file whose local oid equals this one: sha256 for LFS, git blob id otherwise
        answer["oid"] = existing.lfs_sha256 if existing.is_lfs else existing.oid
    return answer


def lfs_batch(app: HubServer, req: Request, repo: str) -> Response:
    found = app.writable(req, repo)
    data = req.json() or {}
    if data.get("operation") != "upload":
        raise HubError(400, "Only the upload operation is supported")
    if "basic" not in data.get("transfers", ["basic"]):
        raise HubError(400, "Only the basic transfer is supported")
    objects = [_batch_object(app, found, obj) for obj in data.get("objects", [])]
    body = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
    return Response(200, dict(LFS_JSON), json.dumps(body).encode())


def _batch_object(app: HubServer, repo: Repo, obj: dict) -> dict:
    oid, size = str(obj.get("oid", "")), obj.get("size")
    if not _OID.fullmatch(oid) or not isinstance(size, int) or size < 0:
        error = {"code": 422, "message": "Invalid object"}
        return {"oid": oid, "size": size if isinstance(size, int) else 0, "error": error}
    if app.store.has_object(repo, oid, size):
        return {"oid": oid, "size": size}  # no actions: already stored
    upload = {"href": app.upload_url(repo.repo_id, oid, size), "header": {}}
    verify = {"href": f"{app.url}/{repo.repo_id}.git/info/lfs/objects/verify", "header": {}}
    return {"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload, "verify": verify}}


def lfs_upload(app: HubServer, req: Request, repo: str, oid: str) -> Response:
    """Basic transfer target: a pre-signed URL, so no Authorization header is expected."""
    found = app.store.get(repo)
    if found is None or req.arg("sig") != app.signature(repo, oid):
        raise HubError(403, "Invalid or expired upload signature")
    expected = int(req.arg("size", "-1") or -1)
    staged, digest, size = _stage(app, req)
    if digest != oid or size != expected:
        staged.unlink()
        raise HubError(400, f"Uploaded content does not match oid/size (got {size} bytes, sha256 {digest})")
    app.store.ingest(found, oid, size, staged)
    return Response(200)


def _stage(app: HubServer, req: Request) -> tuple[Path, str, int]:
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=app.store.staging_dir(), delete=False) as out:
        for piece in req.body.chunks():
            digest.update(piece)
            out.write(piece)
    return Path(out.name), digest.hexdigest(), req.body.count


def lfs_verify(app: HubServer, req: Request, repo: str) -> Response:
    found = app.writable(req, repo)
    data = req.json() or {}
    if not app.store.has_object(found, str(data.get("oid")), data.get("size")):
        raise HubError(404, f"Object {data.get('oid')} not found")
    return Response(200, dict(LFS_JSON), b"{}")


def commit(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    found = app.writable(req, repo)
    if req.arg("create_pr"):
        raise HubError(400, "Pull requests are not supported by this test Hub")
    header, operations = _parse_ndjson(req.body.read_all())
    parent = header.get("parentCommit")
    made = app.store.commit(
        found,
        rev,
        [_in_xet_if_uploaded_there(app, found, op) for op in operations],
        message=str(header.get("summary") or ""),
        description=str(header.get("description") or ""),
        parent=parent,
    )
    url = f"{app.url}/{found.repo_id}/commit/{made.sha}"
    body = {"success": True, "commitOid": made.sha, "commitUrl": url, "hookOutput": "", "pullRequestUrl": None}
    return json_response(body)


def _in_xet_if_uploaded_there(app: HubServer, repo: Repo, op: Operation) -> Operation:
    """An ``lfsFile`` names content by sha256 whichever protocol carried it; Xet uploads are found in the CAS."""
    if not isinstance(op, AddFile) or not op.entry.is_lfs:
        return op
    entry = op.entry
    stored = app.xet.find(repo.repo_id, entry.lfs_sha256 or "", entry.size)
    if stored is None:
        return op  # the store then requires an object sent through LFS
    app.store.remember_xet(stored)
    return AddFile(FileEntry.lfs(entry.path, stored.sha256, stored.size, xet_hash=stored.xet_hash))


def _parse_ndjson(raw: bytes) -> tuple[dict, list[Operation]]:
    header: dict | None = None
    operations: list[Operation] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item.get("key"), item.get("value") or {}
        if key == "header":
            header = value
        else:
            operations.append(_operation(key, value))
    if header is None or not header.get("summary"):
        raise HubError(400, "Commit is missing its header or summary")
    return header, operations


def _operation(key: str, value: dict) -> Operation:
    path = _clean_path(value.get("path"))
    if key == "file":
        return AddFile(FileEntry.regular(path, _decode(value, path)))
    if key == "lfsFile":
        oid = str(value.get("oid", ""))
        if value.get("algo", "sha256") != "sha256" or not _OID.fullmatch(oid):
            raise HubError(400, f"Invalid LFS pointer for {path}")
        return AddFile(FileEntry.lfs(path, oid, int(value.get("size", -1))))
    if key in ("deletedFile", "deletedFolder"):
        return DeletePath(path, folder=key == "deletedFolder")
    raise HubError(400, f"Unknown commit operation {key!r}")


def _decode(value: dict, path: str) -> bytes:
    if value.get("encoding") != "base64":
        raise HubError(400, f"Unsupported encoding for {path}")
    try:
        content = base64.b64decode(value.get("content", ""), validate=True)
    except binascii.Error as exc:
        raise HubError(400, f"Invalid base64 content for {path}") from exc
    if len(content) >= LFS_SIZE_THRESHOLD:
        raise HubError(400, f"{path} is larger than 10 MiB: it must be uploaded with LFS")
    if looks_binary(content):
        raise HubError(400, f"Your push was rejected because it contains binary files: {path}. "
                       "Binary files go through Xet or LFS (preupload answers uploadMode 'lfs' for them)")
    return content


def _clean_path(raw: object) -> str:
    path = str(raw or "").lstrip("/")
    if not path or any(part in ("", ".", "..") for part in path.rstrip("/").split("/")) or path.startswith(".git/"):
        raise HubError(400, f"Invalid path in commit: {raw!r}")
    return path
