"""`--executor ray --address` where no Ray cluster answers: one line, exit 13, in seconds (no Ray needed)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import invoke_zoo, run_zoo

BOUND_SECONDS = 10  # the probe's own timeouts are 3 s each; Ray alone waits a minute or more


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def listener(reply: bytes | None) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts and then says ``reply`` (None: nothing at all)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in held:
            conn.close()


def build_on(zoo_root: Path, address: str):
    start = time.monotonic()
    result = invoke_zoo("build", "tiny-llama", "--target", "mac", "--executor", "ray", "--address", address,
                        root=zoo_root)
    return result, time.monotonic() - start


def assert_one_line_error(result, address: str, *words: str) -> None:
    assert result.exit_code == 13, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: --address {address}: "), result.output
    assert lines[1].startswith("  hint: ") and "ray start --head" in lines[1], result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], result.output


def test_a_closed_port_fails_at_once(zoo_root: Path):
    address = f"127.0.0.1:{closed_port()}"
    result, seconds = build_on(zoo_root, address)
    assert_one_line_error(result, address, "no Ray cluster there", "refused")
    assert seconds < BOUND_SECONDS
    assert not (zoo_root / "build").exists()  # nothing was built or started


def test_a_silent_listener_fails_within_the_bound(zoo_root: Path):
    with listener(None) as port:
        address = f"127.0.0.1:{port}"
        result, seconds = build_on(zoo_root, address)
    assert_one_line_error(result, address, "something listens there, but not a Ray cluster")
    assert 2 < seconds < BOUND_SECONDS  # it did wait for a greeting, and no longer than its timeout


def test_a_server_that_is_not_grpc_is_not_a_cluster(zoo_root: Path):
    with listener(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n") as port:
        address = f"127.0.0.1:{port}"
        result, seconds = build_on(zoo_root, address)
    assert_one_line_error(result, address, "not a Ray cluster")
    assert seconds < 2  # it answered: no waiting


def test_an_unknown_host_and_a_bad_port(zoo_root: Path):
    result, _ = build_on(zoo_root, "no-such-host.invalid:6379")
    assert_one_line_error(result, "no-such-host.invalid:6379", "does not resolve")
    bad = invoke_zoo("build", "--all", "--executor", "ray", "--address", "head:sixty", root=zoo_root)
    assert bad.exit_code == 13 and "'sixty' is not a port number" in bad.output


def test_ray_address_from_the_environment_is_checked_too(zoo_root: Path):
    address = f"127.0.0.1:{closed_port()}"
    result = invoke_zoo("build", "--all", "--executor", "ray", root=zoo_root, env={"RAY_ADDRESS": address})
    assert result.exit_code == 13 and f"error: RAY_ADDRESS {address}: no Ray cluster there" in result.output


def test_zoo_debug_shows_the_traceback(zoo_root: Path):
    address = f"127.0.0.1:{closed_port()}"
    plain = run_zoo("build", "tiny-llama", "-t", "mac", "--executor", "ray", "--address", address, root=zoo_root)
    assert plain.returncode == 13 and "Traceback" not in plain.stderr, plain.stderr
    debug = run_zoo("build", "tiny-llama", "-t", "mac", "--executor", "ray", "--address", address, root=zoo_root,
                    env={"ZOO_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ClusterUnreachableError" in debug.stderr


def test_ray_s_own_address_forms_are_left_to_ray():
    from zootool.build.cluster_address import host_and_port

    assert host_and_port("auto") is None and host_and_port("local") is None
    assert host_and_port("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert host_and_port("ray://head") == ("head", 10001)
    assert host_and_port("ray://[::1]:10002") == ("::1", 10002)


def test_probe_alone_raises_the_typed_error():
    from zootool.build.cluster_address import require_cluster
    from zootool.errors import ClusterUnreachableError

    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(ClusterUnreachableError) as caught:
        require_cluster(address)
    assert caught.value.exit_code == 13 and address in caught.value.message
