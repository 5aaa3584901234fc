"""Keep the conversion stack's chatter out of the user's terminal and out of ``--json`` stdout.

torch, torchao, transformers, coreai-torch (a rich progress bar on stdout) and the
native Core AI runtime (lines on fd 2) all talk while a build runs. Inside ``captured``
both file descriptors go to a log file, so a failure can point at it; with
``ZOO_DEBUG=1`` nothing is captured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

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
        warnings.simplefilter("ignore")
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
