"""The export's child process: ``python -m zootool.build.export_child REQUEST RESULT PARENT`` (see ``child``).

Reads the pickled ``ExportRequest``, runs ``export.export_model`` and writes the pickled
``ExportResult`` (the model path or the error) with an atomic rename, so a crash never
leaves half a result. Its stdout and stderr are the build's, i.e. the conversion log.

Test seam: ``ZOO_TEST_EXPORT_CRASH`` (only when set) makes the child die before the export
starts, as the conversion stack can: ``abort`` writes the converter's disk-full message and
calls ``os.abort()``, ``kill`` sends itself SIGKILL (as the out-of-memory killer does),
``exit`` exits with code 3; ``hang`` sleeps until it is killed (so a test can kill the build
process and see that its export goes too). Any other value is a ``ConfigError`` raised in
the child, as an export error would be.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

CRASH_ENV = "ZOO_TEST_EXPORT_CRASH"
PARENT_POLL_SECONDS = 1.0


def main(argv: list[str]) -> int:
    request_path, result_path, parent = Path(argv[0]), Path(argv[1]), int(argv[2])
    # The build's pid comes from the build itself: if it died before this line ran, the
    # process that adopted us is someone else, and getppid() would be no proof of life.
    _die_with_parent(parent)
    from ..child import encode_error
    from ..quiet import quiet_libraries

    if os.environ.get("ZOO_DEBUG") != "1":
        quiet_libraries()
        warnings.simplefilter("ignore")
    try:
        request = pickle.loads(request_path.read_bytes())
        _crash_if_asked()
        result = _export(request)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every error goes back to the parent, typed
        _print_traceback(exc)
        result = encode_error(exc)
    _write_atomic(result_path, pickle.dumps(result))
    return 0


def _print_traceback(exc: Exception) -> None:
    """Into the conversion log: every unexpected error, and with ZOO_DEBUG=1 the typed ones too."""
    from ...errors import ZooError

    if not isinstance(exc, ZooError) or os.environ.get("ZOO_DEBUG") == "1":
        import traceback

        traceback.print_exc()
        sys.stderr.flush()


def _export(request):
    from ...config.zoo_data import Scheme
    from ...phase_clock import recording
    from ..child import ExportResult
    from ..export import export_model

    scheme = Scheme.unquantized() if request.fp16 else None
    with recording() as phases:
        model = export_model(request.plan, request.checkpoint, request.out_dir, request.stem, kernel=request.kernel,
                             scheme=scheme)
    return ExportResult(model=model, phases=phases)


def _crash_if_asked() -> None:
    how = os.environ.get(CRASH_ENV)
    if not how:
        return
    os.write(2, f"[{CRASH_ENV}={how}] simulated crash of the export process\n".encode())
    if how == "abort":
        os.write(2, b"LLVM ERROR: IO failure on output stream: No space left on device\n")
        os.abort()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "exit":
        os._exit(3)  # as native code exits: no Python clean-up, no result
    if how == "hang":
        while True:
            time.sleep(PARENT_POLL_SECONDS)
    from ...errors import ConfigError

    raise ConfigError(f"{CRASH_ENV}={how!r}: not a crash this test seam knows", "use abort, kill, exit or hang")


def _die_with_parent(parent: int) -> None:
    """If the build process is killed, its export must stop too (it writes into the build's staging)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
