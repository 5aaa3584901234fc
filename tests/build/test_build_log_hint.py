"""A build failure points at the conversion log only when the log holds something to read."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_zoo

from zootool.build.quiet import pointing_at
from zootool.errors import FetchError


@pytest.mark.parametrize("content,named", [(None, False), (b"", False), (b"converter said: boom\n", True)])
def test_hint_names_the_log_only_when_it_was_written(tmp_path: Path, content, named):
    log = tmp_path / "mac.log"
    if content is not None:
        log.write_bytes(content)
    with pytest.raises(FetchError) as caught, pointing_at(log):
        raise FetchError("download failed", "check the network")
    assert (f"(conversion log: {log})" in caught.value.hint) is named
    assert caught.value.hint.startswith("check the network")


def test_unpinned_source_is_refused_without_pointing_at_a_log(zoo_root: Path):
    """The flagship is not pinned: refused before any download or conversion (a real build run)."""
    result = run_zoo("build", "lfm2.5-8b-a1b", "--target", "mac", root=zoo_root)
    assert result.returncode == 2, result.stderr
    assert "has no pinned revision" in result.stderr
    assert "conversion log" not in result.stderr and "Traceback" not in result.stderr
