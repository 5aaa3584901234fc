"""Synchronous sessions over the async Core AI runtime (Linux CPU or macOS).

The runtime API is ``async``; a session owns a private event loop on a helper
thread, so it works from plain code and from inside a running loop alike, and keeps
the model loaded between calls (a decode loop runs many steps on one load).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import BackendFailedError

KERNEL_SYMBOL = "Unresolved symbol: coreai.metal4_kernel"


class KernelNotExecutableError(BackendFailedError):
    """The asset holds a custom Metal kernel and this platform's runtime cannot run it.

    On Linux the Core AI runtime is CPU-only: loading a function that contains a
    ``coreai.metal4_kernel`` op fails with ``Unresolved symbol: coreai.metal4_kernel``.
    """


class _LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="coreai-runtime", daemon=True)
        self.thread.start()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class AimodelSession:
    """One loaded function of a ``.aimodel``; call :meth:`run` as often as needed."""

    def __init__(self, aimodel_path: Path, function: str = "main") -> None:
        from coreai.authoring.asset import AIModelAsset

        self.path = Path(aimodel_path)
        self._loop: _LoopThread | None = _LoopThread()
        self._entered = False
        try:
            self._context = AIModelAsset.load(self.path).executable()
            model = self._loop.call(self._context.__aenter__())
            self._entered = True
            self._function = model.load_function(function)
        except Exception as exc:
            self.close()
            raise _runtime_error(self.path, "load", exc) from exc
        desc = self._function.desc
        self._inputs = {name: desc.input_descriptor(name) for name in desc.input_names}
        self.states = {name: _described(desc.state_descriptor(name)) for name in desc.state_names}

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._function.desc.output_names)

    def input_shape(self, name: str) -> tuple[int, ...]:
        """The declared shape of an input; -1 marks a dynamic axis."""
        return _described(self._inputs[name])[0]

    def run(self, inputs: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run the function: numpy arrays in (cast to the declared dtypes), numpy copies out.

        ``state`` maps state names to runtime ``NDArray`` objects (see :meth:`new_state`),
        which the function updates in place.
        """
        from coreai.runtime._ndarray import NDArray

        arrays = {name: NDArray(self._cast(name, value)) for name, value in inputs.items()}
        try:
            call = self._function(arrays, state=dict(state)) if state else self._function(arrays)
            outputs = self._loop.call(call)
        except Exception as exc:
            raise _runtime_error(self.path, "run", exc) from exc
        # Copy: numpy() views the runtime's buffer, which the next call may reuse.
        return {name: value.numpy().copy() for name, value in outputs.items()}

    def _cast(self, name: str, value: Any) -> Any:
        import numpy as np

        if name not in self._inputs:
            raise BackendFailedError(f"{self.path}: no input named {name!r}", f"inputs are: {', '.join(self._inputs)}")
        array = np.asarray(value)
        expected = np.dtype(self._inputs[name].dtype)
        if array.dtype != expected and not np.can_cast(array.dtype, expected, "same_kind"):
            raise BackendFailedError(f"{self.path}: input {name!r} is {array.dtype}, the model takes {expected}")
        return np.ascontiguousarray(array, dtype=expected)

    def close(self) -> None:
        """Unload the model and stop the loop thread (idempotent)."""
        if self._loop is None:
            return
        if self._entered:
            self._entered = False
            self._loop.call(self._context.__aexit__(None, None, None))
        self._context = self._function = None
        self._loop.stop()
        self._loop = None

    def __enter__(self) -> AimodelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_state(array: Any) -> Any:
    """A runtime array holding ``array`` (numpy), for :meth:`AimodelSession.run`'s ``state``."""
    import numpy as np
    from coreai.runtime._ndarray import NDArray

    return NDArray(np.ascontiguousarray(array))


def _described(descriptor: Any) -> tuple[tuple[int, ...], Any]:
    """(shape with -1 for dynamic axes, numpy dtype) of a runtime NDArray descriptor."""
    import numpy as np

    return tuple(int(size) for size in descriptor.shape), np.dtype(descriptor.dtype)


def _runtime_error(path: Path, stage: str, exc: Exception) -> BackendFailedError:
    text = str(exc)
    if KERNEL_SYMBOL in text:
        return KernelNotExecutableError(
            f"{path}: the model contains a custom Metal kernel (coreai.metal4_kernel) that this platform's "
            f"Core AI runtime cannot execute ({text})",
            "run the kernel-free twin (kernel = \"gather_mm\", same quantized weights) here; "
            "the kernel itself runs on Apple GPUs only",
        )
    return BackendFailedError(
        f"{path}: Core AI runtime {stage} failed: {type(exc).__name__}: {text}",
        "check input names, shapes and dtypes against `zoo verify` / storage_summary()",
    )
