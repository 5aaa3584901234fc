"""Check, in a few seconds, that a Ray cluster answers at an address before joining it.

``ray.init`` waits for an absent cluster for a minute or more, retrying and logging as it goes.
Here one TCP connection (``CONNECT_TIMEOUT_SECONDS``) tells whether anything listens, and the
HTTP/2 greeting every gRPC server (Ray's GCS and its client server) sends in reply to a client's
preface tells whether it is a Ray endpoint at all. Only ``host:port`` addresses (optionally
``ray://``) are checked: ``auto`` and ``local`` are Ray's to resolve.
"""

from __future__ import annotations

import socket

from ..errors import ClusterUnreachableError

CONNECT_TIMEOUT_SECONDS = 3.0
GREETING_TIMEOUT_SECONDS = 3.0
CLIENT_PORT = 10001  # Ray client's default when a ray:// address names no port
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # a SETTINGS frame with no parameters
SETTINGS_FRAME = 0x4
WHAT_TO_DO = "start it there (ray start --head --port PORT) or pass the address `ray status` prints on its head node"


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``ray://host[:port]``; None for Ray's own forms (auto, local)."""
    rest = address.removeprefix("ray://")
    if rest in ("auto", "local") or not rest:
        return None
    host, sep, port = rest.rpartition(":")
    if not sep:
        return (rest, CLIENT_PORT) if address.startswith("ray://") else None
    if not port.isdigit():
        raise ClusterUnreachableError(f"--address {address}: '{port}' is not a port number",
                                      "give the cluster's address as HOST:PORT, e.g. 10.0.0.5:6379")
    return host.strip("[]"), int(port)


def require_cluster(address: str, source: str = "--address") -> None:
    """Raise ``ClusterUnreachableError`` unless a gRPC server answers at ``address`` (from ``source``)."""
    endpoint = host_and_port(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            answered = _greets_like_grpc(conn)
    except socket.gaierror as exc:
        raise ClusterUnreachableError(f"{source} {address}: the host name does not resolve ({exc.strerror})",
                                      f"check the address; {WHAT_TO_DO}") from None
    except TimeoutError:
        raise ClusterUnreachableError(
            f"{source} {address}: no answer within {CONNECT_TIMEOUT_SECONDS:.0f} s (a firewall, or no such host)",
            f"check the address and that this machine may reach that port; {WHAT_TO_DO}") from None
    except OSError as exc:
        raise ClusterUnreachableError(f"{source} {address}: no Ray cluster there ({exc.strerror or exc})",
                                      WHAT_TO_DO) from None
    if not answered:
        raise ClusterUnreachableError(f"{source} {address}: something listens there, but not a Ray cluster",
                                      f"check the port (a Ray head listens on 6379 by default); {WHAT_TO_DO}")


def _greets_like_grpc(conn: socket.socket) -> bool:
    """Whether the server's first frame after a client's HTTP/2 preface is SETTINGS, as HTTP/2 requires."""
    conn.settimeout(GREETING_TIMEOUT_SECONDS)
    try:
        conn.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
        header = _read(conn, 9)
    except OSError:  # a timeout included: a server that says nothing is not a Ray endpoint
        return False
    return len(header) == 9 and header[3] == SETTINGS_FRAME


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data
