"""The export child's plumbing without a conversion: errors across the process boundary, the log tail."""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

from zootool.build.child import ExportResult, died, encode_error, log_tail
from zootool.errors import BackendFailedError, ConfigError, FetchError, RecipeError

from test_resources import plan_for, REPO


def _across(result: ExportResult) -> ExportResult:
    return pickle.loads(pickle.dumps(result))


def test_zoo_errors_cross_as_themselves():
    recipe = _across(encode_error(RecipeError(Path("recipes/x.toml"), "model.id", "bad id", "did you mean y"))).error
    assert type(recipe) is RecipeError and recipe.exit_code == 2
    assert (recipe.message, recipe.hint, recipe.path, recipe.key) == (
        "recipes/x.toml: model.id: bad id", "did you mean y", Path("recipes/x.toml"), "model.id")
    fetch = _across(encode_error(FetchError("truncated"))).error
    assert type(fetch) is FetchError and fetch.exit_code == 9 and str(fetch) == "truncated"


def test_an_error_with_an_unpicklable_attribute_keeps_type_message_and_hint():
    error = ConfigError("bad", "fix it")
    error.handle = lambda: None  # a lambda does not pickle
    back = _across(encode_error(error)).error
    assert type(back) is ConfigError and (back.message, back.hint) == ("bad", "fix it")


def test_other_exceptions_cross_by_name_and_text():
    assert _across(encode_error(ValueError("odd shape"))).unexpected == ("ValueError", "odd shape")


def test_log_tail_keeps_the_last_lines_without_terminal_noise(tmp_path: Path):
    log = tmp_path / "mac.log"
    lines = [f"line {n}" for n in range(100)]
    log.write_text("\n".join(lines[:-1]) + f"\n{lines[-1]}\r\n\x1b[32mconverting\x1b[0m 10%\rconverting 100%\n\n")
    tail = log_tail(log)
    assert tail == lines[-19:] + ["converting 100%"]
    assert log_tail(tmp_path / "absent.log") == []


def test_death_names_the_signal_and_a_full_disk(tmp_path: Path):
    plan = plan_for(REPO, "tiny-lfm2-moe", "mac")
    log = tmp_path / "mac.log"
    log.write_text("saving\nLLVM ERROR: IO failure on output stream: No space left on device\n")
    aborted = died(-signal.SIGABRT, log, plan)
    assert isinstance(aborted, BackendFailedError) and aborted.exit_code == 5
    assert "SIGABRT" in aborted.message and "the disk is full" in aborted.message
    assert aborted.message.splitlines()[-1].strip() == "LLVM ERROR: IO failure on output stream: No space left on device"
    assert "free disk space" in aborted.hint
    log.write_text("quantizing\n")
    killed = died(-signal.SIGKILL, log, plan)
    assert "SIGKILL" in killed.message and "out-of-memory" in killed.message and "disk" not in killed.message
    assert "memory" in killed.hint
    assert "exited with code 3" in died(3, log, plan).message
