"""Keep the conversion stack's chatter out of the user's terminal and out of ``--json`` stdout.

torch, torchao, transformers, coreai-torch (a rich progress bar on stdout, a version
warning at import) and the native Core AI runtime (lines on fd 2, such as ``loc(...)``
parser errors) all talk while a build runs, and whenever ``zoo verify``, ``zoo run`` or
``zoo publish`` load an asset. Inside ``captured`` both file descriptors go to a log file
(Python warnings too, once per place), so a failure can point at it; with ``ZOO_DEBUG=1``
nothing is captured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import ResourceError, ZooError

NOISY_LOGGERS = ("torchao", "torch", "transformers", "coreai", "coreai_torch", "coreai_opt", "huggingface_hub")


def quiet_libraries() -> None:
    """Settings that must be in place before the heavy libraries are imported."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def captured(log_path: Path) -> Iterator[Path]:
    """Send fd 1 and fd 2 (Python and native writers alike) to ``log_path``."""
    if os.environ.get("ZOO_DEBUG") == "1":
        yield log_path
        return
    quiet_libraries()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log_path.open("wb") as log, warnings.catch_warnings():
        warnings.simplefilter("default")  # into the log, once per place: e.g. coreai-torch's torch-version warning
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield log_path
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def command_log(command: str, root: Path | None = None) -> Path:
    """Where ``zoo <command>`` sends the stack's output: ``.zoo-cache/logs/zoo-<command>.log`` of the zoo,
    or outside a zoo (a bundle checked where it was downloaded) ``zootool-logs/`` of the temporary directory."""
    from ..config.zoo_root import check_root, find_root

    try:
        zoo = check_root(root.resolve(), "--root") if root else find_root()
        folder = zoo / ".zoo-cache" / "logs"
    except ZooError:
        folder = Path(tempfile.gettempdir()) / f"zootool-logs-{os.getuid()}"
    return folder / f"zoo-{command}.log"


@contextlib.contextmanager
def pointing_at(log: Path) -> Iterator[None]:
    """Failures name the log that holds the conversion stack's own output, when it holds any.

    A refusal before any conversion (an unpinned source, a missing license, too little
    memory or disk) leaves the log empty or unwritten; pointing at it would send the reader
    to nothing.
    """
    try:
        yield
    except ResourceError:
        raise
    except ZooError as exc:
        if log.is_file() and log.stat().st_size > 0:
            exc.hint = f"{exc.hint} (conversion log: {log})".strip()
        raise


@contextlib.contextmanager
def quiet_command(command: str, root: Path | None = None) -> Iterator[Path]:
    """A command's stack output in its log (``command_log``), named by the hint of an error it raises."""
    log = command_log(command, root)
    if os.environ.get("ZOO_DEBUG") == "1":
        yield log
        return
    with pointing_at(log), captured(log):
        yield log


def terminal_stream():
    """A text stream on the terminal's stderr that survives ``captured`` (for progress)."""
    return os.fdopen(os.dup(2), "w", buffering=1)


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' loaders draw a progress bar per call; a loop of them would flood the log."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
