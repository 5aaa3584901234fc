"""``/api`` routes: identity, repo creation, card validation, repo info, tree, refs, tags."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from .errors import HubError
from .objects import digest_of
from .rules import validate_card
from .store import Commit, FileEntry, Repo
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .server import HubServer


def whoami(app: HubServer, req: Request) -> Response:
    grant = app.auth.require(req)
    orgs = [{"type": "org", "name": org} for org in grant.orgs]
    access = {"displayName": "zootool-test", "role": grant.role}
    auth = {"type": "access_token", "accessToken": access}
    return json_response({"type": "user", "name": grant.user, "fullname": grant.user, "orgs": orgs, "auth": auth})


def create_repo(app: HubServer, req: Request) -> Response:
    grant = app.auth.require(req)
    data = req.json() or {}
    if data.get("type", "model") not in (None, "model"):
        raise HubError(400, "This test server only hosts model repositories")
    namespace = data.get("organization") or grant.user
    repo_id = f"{namespace}/{data.get('name', '')}"
    if not data.get("name") or "/" in data["name"]:
        raise HubError(400, "Invalid repo name")
    app.auth.require_write(grant, namespace)
    private = data.get("visibility") == "private" or data.get("private") is True
    url = f"{app.url}/{repo_id}"
    try:
        app.store.create_repo(repo_id, private=private)
    except HubError as err:
        if err.status == 409:
            return json_response({"error": err.message, "url": url}, 409, {"X-Error-Message": err.message})
        raise
    return json_response({"url": url, "name": repo_id, "id": repo_id})


def validate_yaml(app: HubServer, req: Request) -> Response:
    data = req.json() or {}
    errors, warnings = validate_card(str(data.get("content", "")))
    if not errors:
        return json_response({"errors": [], "warnings": [{"message": w} for w in warnings]})
    if "text/plain" in req.headers.get("Accept", ""):
        text = "\n".join(f"- {e}" for e in errors).encode()
        return Response(400, {"Content-Type": "text/plain"}, text)
    return json_response({"errors": [{"message": e} for e in errors], "warnings": []}, 400)


def model_info(app: HubServer, req: Request, repo: str, rev: str = "main") -> Response:
    found = app.readable(req, repo)
    commit = app.store.resolve(found, rev)
    with_blobs = req.arg("blobs") in ("True", "true", "1")
    siblings = [_sibling(entry, with_blobs) for entry in commit.files.values()]
    return json_response(
        {
            "_id": repo,
            "id": repo,
            "modelId": repo,
            "author": repo.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": found.created_at,
            "private": found.private,
            "gated": False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
        }
    )


def _sibling(entry: FileEntry, with_blobs: bool) -> dict:
    if not with_blobs:
        return {"rfilename": entry.path}
    lfs = {"size": entry.size, "sha256": entry.lfs_sha256, "pointerSize": entry.pointer_size} if entry.is_lfs else None
    return {"rfilename": entry.path, "size": entry.size, "blobId": entry.oid, "lfs": lfs}


def tree(app: HubServer, req: Request, repo: str, rev: str, path: str = "") -> Response:
    commit = app.store.resolve(app.readable(req, repo), rev)
    recursive = req.arg("recursive", "false").lower() in ("true", "1")
    prefix = path.strip("/")
    if prefix and prefix in commit.files:
        return json_response([file_entry_json(commit.files[prefix])])
    entries = _listing(commit, prefix, recursive)
    if prefix and not entries:
        raise HubError(404, f"Entry not found: {prefix}", code="EntryNotFound")
    return json_response(entries)


def _listing(commit: Commit, prefix: str, recursive: bool) -> list[dict]:
    base = prefix + "/" if prefix else ""
    out: dict[str, dict] = {}
    for file_path, entry in sorted(commit.files.items()):
        if not file_path.startswith(base):
            continue
        rest = file_path[len(base) :].split("/")
        for depth in range(1, len(rest)):
            folder = base + "/".join(rest[:depth])
            out.setdefault(folder, folder_json(commit, folder))
            if not recursive:
                break
        if recursive or len(rest) == 1:
            out[file_path] = file_entry_json(entry)
    return list(out.values())


def file_entry_json(entry: FileEntry) -> dict:
    data = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path}
    if entry.is_lfs:
        data["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if entry.xet_hash:
        data["xetHash"] = entry.xet_hash
    return data


def folder_json(commit: Commit, folder: str) -> dict:
    inside = sorted(f"{p} {e.oid}" for p, e in commit.files.items() if p.startswith(folder + "/"))
    return {"type": "directory", "oid": digest_of(folder, *inside), "size": 0, "path": folder}


def paths_info(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    commit = app.store.resolve(app.readable(req, repo), rev)
    form = req.form()
    wanted = [posixpath.normpath(p).lstrip("/") for p in form.get("paths", [])]
    folders = {f for path in commit.files for f in _parents(path)}
    out = []
    for path in wanted:
        if path in commit.files:
            out.append(file_entry_json(commit.files[path]))
        elif path in folders:
            out.append(folder_json(commit, path))
    return json_response(out)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def refs(app: HubServer, req: Request, repo: str) -> Response:
    found = app.readable(req, repo)
    with app.store.lock:
        branches = [_ref(name, "heads", sha) for name, sha in found.branches.items()]
        tags = [_ref(name, "tags", sha) for name, sha in found.tags.items()]
    return json_response({"branches": branches, "converts": [], "tags": tags, "pullRequests": []})


def _ref(name: str, kind: str, sha: str) -> dict:
    return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}


def create_tag(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    found: Repo = app.writable(req, repo)
    data = req.json() or {}
    tag = data.get("tag")
    if not isinstance(tag, str) or not tag:
        raise HubError(400, "Missing tag name")
    app.store.add_tag(found, tag, rev)
    return json_response({})


def xet_write_token(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    """Where hf_xet uploads to: a write token of the repo's own CAS, for an existing branch."""
    found = app.writable(req, repo)
    _require_xet(app)
    app.store.branch_head(found, rev)
    return _xet_connection(app, repo)


def xet_read_token(app: HubServer, req: Request, repo: str, rev: str) -> Response:
    """Where hf_xet downloads from; ``rev`` is the commit the ``/resolve`` answer named."""
    found = app.readable(req, repo)
    _require_xet(app)
    app.store.resolve(found, rev)
    return _xet_connection(app, repo)


def _require_xet(app: HubServer) -> None:
    if not app.xet_enabled:
        raise HubError(
            501,
            "This test Hub has Xet turned off (LFS only): set HF_HUB_DISABLE_XET=1 before importing huggingface_hub",
        )


def _xet_connection(app: HubServer, repo: str) -> Response:
    """The same facts twice: hf_xet reads the JSON body, huggingface_hub the headers."""
    info = app.xet.connection(repo, app.xet_token)
    headers = {"X-Xet-Cas-Url": info["casUrl"], "X-Xet-Access-Token": info["accessToken"],
               "X-Xet-Token-Expiration": str(info["exp"])}
    return json_response(info, headers=headers)
