"""``HubServer``: a small Hugging Face Hub look-alike on 127.0.0.1 for the real client.

Two origins are served: the Hub itself (API, LFS batch, uploads, ``/resolve``) and a
"CDN" on a second port that LFS downloads redirect to, so the client takes the same
cross-origin path it takes against huggingface.co.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import socket
import tempfile
import threading
import traceback
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import api, download, upload
from .errors import HubError, repo_not_found
from .store import Commit, FileEntry, Repo, Store
from .wire import FaultPlan, HubRequestHandler, Request, Response, Router, Stats, error_response
from .xet import XetStore

REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>[^/]+)"
WRITE_TOKEN = "hf_zootest_write_0123456789abcdef"
READ_TOKEN = "hf_zootest_read_0123456789abcdef"
DEFAULT_USER = "zoo-tester"
DEFAULT_ORG = "zoo-org"


@dataclass(frozen=True)
class Grant:
    """What a token may do: read everything it can see, write to its user and org namespaces."""

    user: str
    role: str = "write"
    orgs: tuple[str, ...] = ()

    def owns(self, namespace: str) -> bool:
        return namespace == self.user or namespace in self.orgs


def default_grants() -> dict[str, Grant]:
    return {
        WRITE_TOKEN: Grant(DEFAULT_USER, "write", (DEFAULT_ORG,)),
        READ_TOKEN: Grant(DEFAULT_USER, "read", (DEFAULT_ORG,)),
    }


class Auth:
    """Bearer-token checks with the Hub's status codes (401 unknown token, 403 no write role)."""

    def __init__(self, grants: dict[str, Grant]) -> None:
        self.grants = dict(grants)

    def identify(self, req: Request) -> None:
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return
        req.token = token
        req.grant = self.grants.get(token)
        if req.grant is None:
            raise HubError(401, "Invalid credentials in Authorization header")

    def require(self, req: Request) -> Grant:
        if req.grant is None:
            raise HubError(401, "Authentication required: pass a token in the Authorization header")
        return req.grant

    @staticmethod
    def can_see(grant: Grant | None, repo: Repo) -> bool:
        return not repo.private or (grant is not None and grant.owns(repo.repo_id.split("/")[0]))

    @staticmethod
    def require_write(grant: Grant, namespace: str) -> None:
        if grant.role != "write" or not grant.owns(namespace):
            raise HubError(403, f"You don't have the rights to write to the {namespace} namespace")


def _hub_router() -> Router:
    r = Router()
    r.add("whoami", "GET", r"/api/whoami-v2", api.whoami)
    r.add("create_repo", "POST", r"/api/repos/create", api.create_repo)
    r.add("validate_yaml", "POST", r"/api/validate-yaml", api.validate_yaml)
    r.add("model_info", "GET", rf"/api/models/{REPO}(?:/revision/{REV})?", api.model_info)
    r.add("tree", "GET", rf"/api/models/{REPO}/tree/{REV}(?:/(?P<path>.*))?", api.tree)
    r.add("paths_info", "POST", rf"/api/models/{REPO}/paths-info/{REV}", api.paths_info)
    r.add("refs", "GET", rf"/api/models/{REPO}/refs", api.refs)
    r.add("tag", "POST", rf"/api/models/{REPO}/tag/{REV}", api.create_tag)
    r.add("preupload", "POST", rf"/api/models/{REPO}/preupload/{REV}", upload.preupload)
    r.add("commit", "POST", rf"/api/models/{REPO}/commit/{REV}", upload.commit)
    r.add("xet_write_token", "GET", rf"/api/models/{REPO}/xet-write-token/{REV}", api.xet_write_token)
    r.add("xet_read_token", "GET", rf"/api/models/{REPO}/xet-read-token/{REV}", api.xet_read_token)
    r.add("lfs_batch", "POST", rf"/{REPO}\.git/info/lfs/objects/batch", upload.lfs_batch)
    r.add("lfs_verify", "POST", rf"/{REPO}\.git/info/lfs/objects/verify", upload.lfs_verify)
    r.add("lfs_upload", "PUT", rf"/lfs-upload/{REPO}/(?P<oid>[0-9a-f]{{64}})", upload.lfs_upload)
    r.add("resolve", "GET HEAD", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", download.resolve)
    return r


def _cdn_router() -> Router:
    r = Router()
    r.add("cdn", "GET HEAD", r"/blobs/(?P<oid>[0-9a-f]{64})", download.cdn_blob)
    return r


class _Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: HubServer, role: str) -> None:
        super().__init__(address, HubRequestHandler)
        self.app = app
        self.role = role
        self.connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close kept-alive client connections so their handler threads end with the server."""
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HubServer:
    """Start with ``with HubServer() as hub:``; ``hub.url`` is the endpoint to give the client.

    Test knobs: ``faults.add(regex, status=, times=, retry_after=)`` fails matching
    requests before they touch the store; ``stats`` counts requests and body bytes per
    route (``lfs_upload``, ``commit``, ...); ``commits(repo_id)`` lists the history.

    Uploads go through Xet (a ``local://`` CAS per repo) or LFS, as the client chooses;
    ``xet=False`` (or ``xet_enabled = False``) makes an LFS-only endpoint that refuses Xet tokens.
    """

    def __init__(
        self,
        grants: dict[str, Grant] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        storage: Path | None = None,
        xet: bool = True,
    ) -> None:
        self.auth = Auth(default_grants() if grants is None else grants)
        self._own_storage = storage is None
        self.store = Store(Path(tempfile.mkdtemp(prefix="hubserver-")) if storage is None else storage)
        self.xet = XetStore(self.store.root / "xet")
        self.xet_enabled = xet
        self.xet_token = secrets.token_hex(16)  # the local CAS checks none; a token still travels as on the Hub
        self.faults = FaultPlan()
        self.stats = Stats()
        self._secret = secrets.token_bytes(16)
        self._routers = {"hub": _hub_router(), "cdn": _cdn_router()}
        self._address = {"hub": (host, port), "cdn": (host, cdn_port)}
        self._origins: dict[str, _Origin] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------
    def start(self) -> HubServer:
        for role, address in self._address.items():
            origin = _Origin(address, self, role)
            thread = threading.Thread(target=origin.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._origins[role] = origin
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for origin in self._origins.values():
            origin.shutdown()
            origin.drop_connections()
            origin.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._origins.clear()
        self._threads.clear()
        if self._own_storage:
            self.store.wipe()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._base("hub")

    @property
    def cdn_url(self) -> str:
        return self._base("cdn")

    def _base(self, role: str) -> str:
        host, port = self._origins[role].server_address[:2]
        return f"http://{host}:{port}"

    # -- used by the routes ---------------------------------------------
    def dispatch(self, role: str, req: Request) -> tuple[str, Response]:
        """Route one request; injected faults answer before any handler runs."""
        found = self._routers[role].match(req.method, req.path)
        name = found[0].name if found else "unknown"
        fault = self.faults.take(req.method, req.path)
        if fault is not None and fault.action is not None:
            fault.action()
        if fault is not None and fault.status is not None:
            return name, fault.response()
        if found is None:
            return name, error_response(HubError(404, f"No route for {req.method} {req.path}"))
        try:
            self.auth.identify(req)
            return name, found[0].handler(self, req, **found[1])
        except HubError as err:
            return name, error_response(err)
        except Exception as exc:  # a server bug must still answer, or the client hangs
            traceback.print_exc()
            return name, error_response(HubError(500, f"Internal error: {type(exc).__name__}"))

    def readable(self, req: Request, repo_id: str) -> Repo:
        repo = self.store.get(repo_id)
        if repo is None or not self.auth.can_see(req.grant, repo):
            raise repo_not_found(repo_id, authenticated=req.grant is not None)
        return repo

    def writable(self, req: Request, repo_id: str) -> Repo:
        grant = self.auth.require(req)
        repo = self.readable(req, repo_id)
        self.auth.require_write(grant, repo_id.split("/")[0])
        return repo

    def signature(self, scope: str, oid: str) -> str:
        return hmac.new(self._secret, f"{scope}:{oid}".encode(), "sha256").hexdigest()[:32]

    def upload_url(self, repo_id: str, oid: str, size: int) -> str:
        return f"{self.url}/lfs-upload/{repo_id}/{oid}?size={size}&sig={self.signature(repo_id, oid)}"

    def blob_url(self, oid: str) -> str:
        return f"{self.cdn_url}/blobs/{oid}?sig={self.signature('blob', oid)}"

    # -- inspection helpers for tests -----------------------------------
    def repo(self, repo_id: str) -> Repo:
        repo = self.store.get(repo_id)
        if repo is None:
            raise KeyError(repo_id)
        return repo

    def commits(self, repo_id: str) -> list[Commit]:
        """The repo's commits, oldest first (the first one is the creation commit)."""
        repo = self.repo(repo_id)
        with self.store.lock:
            return [repo.commits[sha] for sha in repo.history]

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self.store.branch_head(self.repo(repo_id), branch).sha

    def files(self, repo_id: str, rev: str = "main") -> dict[str, FileEntry]:
        return dict(self.store.resolve(self.repo(repo_id), rev).files)

    def xet_stored_bytes(self, repo_id: str) -> int:
        """Chunk bytes hf_xet has uploaded into ``repo_id``'s CAS (Xet's counterpart of LFS upload bytes)."""
        return self.xet.stored_bytes(repo_id)

    def tags(self, repo_id: str) -> dict[str, str]:
        with self.store.lock:
            return dict(self.repo(repo_id).tags)
