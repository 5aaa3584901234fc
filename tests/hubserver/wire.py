"""HTTP plumbing: requests, responses, routing, fault injection and traffic accounting."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import HubError

CHUNK = 1024 * 1024


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # streamed instead of ``body``
    span: tuple[int, int] = (0, 0)  # offset and length within ``file``
    hang_up: bool = False  # close the connection without answering: a network failure, not an HTTP error


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, {"Content-Type": "application/json", **(headers or {})}, body)


def error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message, **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    return json_response({"error": err.message}, err.status, headers)


class BodyReader:
    """Reads a request body once (Content-Length or chunked) and counts the bytes."""

    def __init__(self, rfile: IO[bytes], headers: Message) -> None:
        self.rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.remaining = int(headers.get("Content-Length") or 0)
        self.count = 0
        self.done = False

    def chunks(self):
        """Yield the body piece by piece; a second pass yields nothing."""
        if self.done:
            return
        self.done = True
        source = self._chunked() if self.chunked else self._sized()
        for piece in source:
            self.count += len(piece)
            yield piece

    def _sized(self):
        while self.remaining > 0:
            piece = self.rfile.read(min(CHUNK, self.remaining))
            if not piece:
                raise ConnectionError("client closed the connection mid-body")
            self.remaining -= len(piece)
            yield piece

    def _chunked(self):
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def drain(self) -> None:
        for _ in self.chunks():
            pass


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    token: str | None = None
    grant: Any = None  # the caller's Grant, set by the app when the token is valid

    def json(self) -> Any:
        try:
            return json.loads(self.body.read_all() or b"null")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"Request body is not valid JSON: {exc.msg}") from exc

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.read_all().decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    name: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """First matching route wins; path parameters are URL-decoded before the call."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, name: str, methods: str, pattern: str, handler: Handler) -> None:
        self.routes.append(Route(name, frozenset(methods.split()), re.compile(pattern), handler))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found and method in route.methods:
                params = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
                return route, params
        return None


@dataclass
class Fault:
    """Answer ``status`` to the next ``times`` requests whose path matches ``pattern``.

    With ``status`` None it only runs ``action`` first and the request is then served normally.
    With ``hang_up`` the connection is closed after the request body is read, with no answer.
    """

    pattern: re.Pattern[str]
    status: int | None
    remaining: int
    method: str | None = None
    retry_after: int | None = None
    code: str | None = None
    action: Callable[[], object] | None = None
    hang_up: bool = False
    hits: int = 0

    def response(self) -> Response:
        if self.hang_up:
            return Response(hang_up=True)
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        if self.code:
            headers["X-Error-Code"] = self.code
        message = f"Injected fault {self.status}"
        return json_response({"error": message}, self.status, {"X-Error-Message": message, **headers})


class FaultPlan:
    """Fault-injection knobs shared by the Hub and CDN servers."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        pattern: str,
        *,
        status: int = 500,
        times: int = 1,
        method: str | None = None,
        retry_after: int | None = None,
        code: str | None = None,
    ) -> Fault:
        """Fail the next ``times`` requests to paths matching regex ``pattern`` (searched, not anchored).

        ``retry_after`` sets the ``Retry-After`` header; ``code`` the ``X-Error-Code`` one.
        """
        return self._append(Fault(re.compile(pattern), status, times, method, retry_after, code))

    def hang_up(self, pattern: str, *, times: int = 1, method: str | None = None) -> Fault:
        """Read the next ``times`` matching requests, then close the connection without a response."""
        return self._append(Fault(re.compile(pattern), 0, times, method, hang_up=True))

    def before(self, pattern: str, action: Callable[[], object], *, times: int = 1, method: str | None = None) -> Fault:
        """Run ``action`` before serving the next ``times`` matching requests (e.g. a concurrent push)."""
        return self._append(Fault(re.compile(pattern), None, times, method, action=action))

    def _append(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method) and fault.pattern.search(path):
                    fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True)
class Record:
    server: str
    method: str
    path: str
    route: str
    status: int
    bytes_in: int


class Stats:
    """Every request seen, with the route name and how many body bytes it carried."""

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def select(self, route: str | None = None, method: str | None = None) -> list[Record]:
        return [r for r in self.records if route in (None, r.route) and method in (None, r.method)]

    def count(self, route: str | None = None, method: str | None = None) -> int:
        return len(self.select(route, method))

    def bytes_in(self, route: str | None = None) -> int:
        return sum(r.bytes_in for r in self.select(route))

    def reset(self) -> None:
        with self._lock:
            self._records.clear()


class HubRequestHandler(BaseHTTPRequestHandler):
    """Dispatches to ``server.app`` (see ``HubServer``); one instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "zootool-test-hub/1"

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests read ``Stats`` instead of an access log."""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = BodyReader(self.rfile, self.headers)
        request = Request(self.command, url.path, parse_qs(url.query), self.headers, body)
        route_name, response = self.server.app.dispatch(self.server.role, request)  # type: ignore[attr-defined]
        try:
            body.drain()
        except ConnectionError:
            self.close_connection = True
        # recorded before answering, so a test reading Stats right after its call sees this request
        record = Record(self.server.role, self.command, url.path, route_name, response.status, body.count)  # type: ignore[attr-defined]
        self.server.app.stats.add(record)  # type: ignore[attr-defined]
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.hang_up:
            self.close_connection = True
            return
        length = response.span[1] if response.file is not None else len(response.body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file is None:
            self.wfile.write(response.body)
        else:
            self._stream_file(response.file, *response.span)

    def _stream_file(self, path: Path, offset: int, length: int) -> None:
        with path.open("rb") as src:
            src.seek(offset)
            while length > 0:
                piece = src.read(min(CHUNK, length))
                if not piece:
                    break
                self.wfile.write(piece)
                length -= len(piece)
