"""Fixtures around ``hubserver.HubServer``; load with ``pytest_plugins = ["conftest_hub"]``.

The client uploads through LFS or Xet (hf_xet installed) and the test Hub speaks both. Which
one a test uses is the ``transfer`` fixture: "lfs" by default, both with
``@pytest.mark.parametrize("transfer", TRANSFERS, indirect=True)``.

huggingface_hub reads ``HF_HUB_DISABLE_XET`` once, at import; it then checks the constant it
read on every upload and download. So the ``hub`` fixture sets both: the constant, for calls
made in this process, and the environment variable, for ``zoo`` run in a subprocess. At plugin
import the variable is set to the default (LFS) for any first import made later.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_XET_TELEMETRY_ENABLED", "false")  # hf_xet's own reporting: nothing leaves the machine
# hf_xet retries a failing request 6 times over about 100 s; tests that inject failures need seconds
os.environ.setdefault("HF_XET_CLIENT_RETRY_MAX_ATTEMPTS", "2")
os.environ.setdefault("HF_XET_CLIENT_RETRY_BASE_DELAY", "50ms")

from hubserver import READ_TOKEN, WRITE_TOKEN, HubServer  # noqa: E402 - after the environment above

__all__ = ["READ_TOKEN", "TRANSFERS", "WRITE_TOKEN", "hf_cache", "hub", "local_network_only", "transfer",
           "use_transfer"]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", b"127.0.0.1"})
TRANSFERS = ("lfs", "xet")


@pytest.fixture
def local_network_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything resolves a host other than the loopback (e.g. huggingface.co)."""
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {host!r}; only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


def use_transfer(monkeypatch: pytest.MonkeyPatch, transfer: str) -> None:
    """Make this process and every subprocess upload (and download) through ``transfer``."""
    from huggingface_hub import constants

    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", transfer == "lfs")
    if transfer == "lfs":
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    else:
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)


@pytest.fixture
def transfer(request: pytest.FixtureRequest) -> str:
    """The client's upload protocol for this test: "lfs" unless parametrized (indirect) with "xet"."""
    chosen = getattr(request, "param", "lfs")
    if chosen == "xet":
        pytest.importorskip("hf_xet")
    return chosen


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, local_network_only: None, transfer: str) -> Iterator[HubServer]:
    """A fresh Hub look-alike on 127.0.0.1 (two ports: Hub and CDN), stopped after the test."""
    use_transfer(monkeypatch, transfer)
    with HubServer() as server:
        yield server


@pytest.fixture
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty huggingface_hub cache directory for downloads made by one test."""
    return str(tmp_path_factory.mktemp("hf-cache"))
