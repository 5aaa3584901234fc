"""Run the export in a child process, so that a crash of the conversion stack becomes a typed error.

A full disk makes the converter abort the process from native code ("LLVM ERROR: IO failure
on output stream: No space left on device"), and the out-of-memory killer sends SIGKILL:
neither leaves a Python exception behind. In a child, either is a ``BackendFailedError``
(exit 5) naming the signal or exit code, with the end of the conversion log, which the
child writes into (it inherits the build's file descriptors 1 and 2, see ``quiet``).

The child is ``python -m zootool.build.export_child REQUEST RESULT PARENT``, a fresh interpreter:
``multiprocessing``'s spawn would re-run ``zootool.__main__``, which starts the CLI. The
request (an ``ExportRequest``) and the result (an ``ExportResult``) are pickled files in a
private temporary directory (inside the build's staging directory, so that a killed build's
next run removes them with it); a ``ZooError`` raised in the child comes back as the same
type, message and hint (``ZooError.__reduce__``).
"""

from __future__ import annotations

import builtins
import os
import pickle
import re
import signal
import site
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import BackendFailedError, ZooError, restore_error
from ..phase_clock import PhaseTime
from ..plan.resolve import BuildPlan
from ..units import gb

CHILD_MODULE = "zootool.build.export_child"
TAIL_LINES = 20
TAIL_BYTES = 64 * 1024
NO_SPACE = "No space left on device"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ExportRequest(BaseModel):
    """What ``export.export_model`` is called with in the child."""

    plan: BuildPlan
    checkpoint: Path
    out_dir: Path
    stem: str
    kernel: str | None = None  # None: the plan's (the gate's twins ask for gather_mm)
    fp16: bool = False  # the gate's fp16 ceiling: no weight quantization


class ExportResult(BaseModel):
    """The model file written, or the error the export raised (a ZooError, or a builtin's name and text)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Path | None = None
    phases: dict[str, PhaseTime] = {}  # wall and CPU time of the export's phases (``phase_clock``)
    error: Any = None  # a ZooError instance
    unexpected: tuple[str, str] | None = None  # (exception type name, message)


def run_export(request: ExportRequest, log: Path | None, scratch: Path | None = None) -> ExportResult:
    """Export in a child process; returns its result (the model path, the phases' times) or raises
    the child's error, typed.

    ``log`` is where the child's output goes (its tail explains a crash); ``scratch`` holds
    the request and result files while the child runs (default: the temporary directory).
    """
    with tempfile.TemporaryDirectory(prefix="zoo-export-", dir=scratch) as tmp:
        request_path, result_path = Path(tmp) / "request.pkl", Path(tmp) / "result.pkl"
        request_path.write_bytes(pickle.dumps(request))
        code = _run_child(request_path, result_path)
        result = pickle.loads(result_path.read_bytes()) if result_path.is_file() else None
    if result is not None and result.error is not None:
        raise result.error
    if result is not None and result.unexpected is not None:
        raise _unexpected(*result.unexpected)
    if code != 0 or result is None or result.model is None:
        raise died(code, log, request.plan)
    return result


def _run_child(request_path: Path, result_path: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", CHILD_MODULE, str(request_path), str(result_path), str(os.getpid())]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=child_env())
    try:
        return child.wait()
    finally:
        if child.poll() is None:  # the parent was interrupted: the export must not outlive it
            child.kill()
            child.wait()


def child_env() -> dict[str, str]:
    """The parent's environment, with this zootool first on the path (a worktree beats an install)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    if root not in site.getsitepackages() + [site.getusersitepackages()]:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _unexpected(name: str, message: str) -> Exception:
    """A builtin exception type as raised in the child; anything else as a RuntimeError naming it."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except TypeError:  # a builtin that takes other arguments (UnicodeDecodeError)
            pass
    return RuntimeError(f"{name}: {message}")


def died(code: int, log: Path | None, plan: BuildPlan) -> BackendFailedError:
    """The error for a child that ended without a result: how it ended and the log's last lines."""
    tail = log_tail(log) if log is not None and os.environ.get("ZOO_DEBUG") != "1" else []
    full = any(NO_SPACE in line for line in tail)
    message = f"the export process {_how(code)}" + (f"; the disk is full ({NO_SPACE})" if full else "")
    if tail:
        message += f"\n  last lines of {log}:\n" + "\n".join(f"    {line}" for line in tail)
    return BackendFailedError(message, _hint(code, full, plan))


def _how(code: int) -> str:
    if code >= 0:
        return f"exited with code {code} without a result"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGKILL:
        return f"was killed by {name} (signal {-code}; the out-of-memory killer sends it)"
    if -code == signal.SIGABRT:
        return f"aborted ({name}, signal {-code}): the conversion stack stopped on a native error"
    return f"was killed by {name} (signal {-code})"


def _hint(code: int, disk_full: bool, plan: BuildPlan) -> str:
    export = plan.resources.stages["export"]
    if disk_full:
        return f"free disk space (the export writes about {gb(export.disk_bytes)}) and build again"
    if code == -signal.SIGKILL:
        return (f"the export needs about {gb(export.memory_bytes)} of memory; close other programs, "
                "use a machine with more memory, or choose a smaller scheme (--quant)")
    return "the conversion log ends with the converter's own output; ZOO_DEBUG=1 shows it on the terminal"


def log_tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of ``log``, without terminal escapes or progress-bar redraws."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # split on newlines only: a progress bar redraws its line with carriage returns
    shown = (_ESCAPES.sub("", line).rstrip("\r").split("\r")[-1].rstrip() for line in text.split("\n"))
    return [line for line in shown if line.strip()][-lines:]


def encode_error(error: BaseException) -> ExportResult:
    """The child's side: a ZooError travels as itself, anything else by type name and text."""
    if not isinstance(error, ZooError):
        return ExportResult(unexpected=(type(error).__name__, str(error)))
    try:
        pickle.dumps(error)
    except Exception:  # noqa: BLE001 - an attribute that does not pickle: keep type, message and hint
        error = restore_error(type(error), error.message, {"message": error.message, "hint": error.hint})
    return ExportResult(error=error)
