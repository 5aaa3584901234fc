"""The real zoo on a fresh clone of a machine that cannot reach the Hub: qwen3-0.6b's weights cannot come.

No test here reaches huggingface.co: HF_ENDPOINT points at a closed port of 127.0.0.1, or
HF_HUB_OFFLINE is set, and the Hugging Face cache is an empty folder of the test's own.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from conftest import run_zoo

HUB_MODEL = "qwen3-0.6b"
HUB_TARGETS = {"mac", "iphone", "mac-macos15", "iphone-ios18"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_hub(tmp_path: Path) -> dict[str, str]:
    """An environment whose Hub is a closed local port and whose Hugging Face cache is empty."""
    return {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_OFFLINE": "0"}


def test_rows_whose_weights_cannot_come_fail_fast_with_a_reason_each(zoo_root: Path, no_hub):
    start = time.monotonic()
    result = run_zoo("build", HUB_MODEL, "--json", root=zoo_root, env=no_hub)
    seconds = time.monotonic() - start
    rows = json.loads(result.stdout)
    assert result.returncode == 9, result.stdout + result.stderr
    assert {r["target"] for r in rows} == HUB_TARGETS and {r["exit_code"] for r in rows} == {9}
    for row in rows:
        assert row["message"].startswith("the weights of Qwen/Qwen3-0.6B@c1899de289a0 are not in the Hugging Face "
                                         f"cache and {no_hub['HF_ENDPOINT']} cannot be reached"), row["message"]
        assert "HF_HUB_OFFLINE=1" in row["hint"] and "Traceback" not in row["message"]
    assert seconds < 30  # huggingface_hub alone retries ~25 s per row before it gives up (4 rows, 2 at a time)
    assert not list((Path(no_hub["HF_HOME"])).rglob("*.safetensors"))


def test_offline_changed_skips_them_and_builds_only_the_tiny_rows(zoo_root: Path, no_hub):
    offline = no_hub | {"HF_HUB_OFFLINE": "1"}
    status = json.loads(run_zoo("status", "--json", root=zoo_root, env=offline).stdout)
    states = {(r["model"], r["target"]): r["state"] for r in status}
    assert {t for (m, t), state in states.items() if m == HUB_MODEL and state == "offline"} == HUB_TARGETS
    assert {state for (m, _), state in states.items() if m.startswith("tiny-")} == {"never built"}
    online = {(r["model"], r["target"]): r["state"] for r in json.loads(run_zoo(
        "status", "--json", root=zoo_root, env=no_hub).stdout)}
    assert {online[(HUB_MODEL, t)] for t in HUB_TARGETS} == {"never built"}  # offline is what decides

    plan = json.loads(run_zoo("build", "--all", "--changed", "--dry-run", "--json", root=zoo_root, env=offline).stdout)
    assert {r["model"] for r in plan["rows"]} == {"tiny-lfm2-moe", "tiny-llama"}
    assert {(r["model"], r["state"]) for r in plan["skipped"]} == {
        (HUB_MODEL, "offline"), ("smollm2-135m-instruct", "offline"), ("lfm2.5-8b-a1b", "unpinned")}


def test_a_named_row_offline_fails_at_once(zoo_root: Path, no_hub):
    start = time.monotonic()
    result = run_zoo("build", HUB_MODEL, "--target", "mac", root=zoo_root, env=no_hub | {"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 9, result.stderr
    assert "are not in the Hugging Face cache" in result.stderr and "HF_HUB_OFFLINE is set" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - start < 20


def test_a_complete_cached_snapshot_is_used_without_the_network(tmp_path: Path, monkeypatch):
    from huggingface_hub import constants

    from zootool.fetch.hub import _hub
    from zootool.config.recipe import HubSource

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    source = HubSource(hub="Qwen/Qwen3-0.6B", revision="c1899de289a04d12100db370d81485cdf75e47ca")
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen3-0.6B" / "snapshots" / source.revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    from zootool.errors import FetchError

    with pytest.raises(FetchError, match="cannot be reached"):  # no weights yet: the dead Hub is asked
        _hub(source, None)
    (snapshot / "model.safetensors").write_bytes(b"")
    assert _hub(source, None) == snapshot
