"""Fixtures around ``hubserver.HubServer``; load with ``pytest_plugins = ["conftest_hub"]``.

huggingface_hub reads ``HF_HUB_DISABLE_XET`` once, at import. The variable is set here,
at plugin import, so that a first import made later (and any subprocess) takes the LFS
path our server speaks; the ``hub`` fixture also flips the already-read constant in case
another conftest imported huggingface_hub before this plugin was loaded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from hubserver import READ_TOKEN, WRITE_TOKEN, HubServer  # noqa: E402 - after the environment above

__all__ = ["READ_TOKEN", "WRITE_TOKEN", "hf_cache", "hub", "local_network_only"]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", b"127.0.0.1"})


@pytest.fixture
def local_network_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything resolves a host other than the loopback (e.g. huggingface.co)."""
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {host!r}; only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, local_network_only: None) -> Iterator[HubServer]:
    """A fresh Hub look-alike on 127.0.0.1 (two ports: Hub and CDN), stopped after the test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubServer() as server:
        yield server


@pytest.fixture
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty huggingface_hub cache directory for downloads made by one test."""
    return str(tmp_path_factory.mktemp("hf-cache"))
