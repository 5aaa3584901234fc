"""The engine driver: runs a bundle's model folder the way Apple's LLM engines do.

It reads ``metadata.json``, loads ``assets.main``, takes ``function_map["main"][0]``,
feeds the two positional inputs (``input_ids``, ``position_ids``), allocates every state
from the function's own state descriptors, grows the KV states as the context grows
(from 256 rows, doubling, as the engines' growing KV cache does) and reads the first
output as the logits. Prompts are prefilled in one call up to the chunk threshold and
in chunks of ``min(512, threshold)`` beyond it; a graph whose ``input_ids`` is static
``[1, 1]`` is fed one token per call (``COREAI_CHUNK_THRESHOLD=1`` on a device).

The gate (candidate and fp16 ceiling), ``zoo run`` and the tests run bundles only here.
``.mlpackage`` folders are driven as swift-transformers drives a stateful Core ML model
(``backends.coremltools_runtime``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.app_metadata import AppMetadata, read_app_metadata
from ..errors import VerifyError
from .progress import step

DEFAULT_CHUNK_THRESHOLD = 1024  # COREAI_CHUNK_THRESHOLD's default
MAX_PREFILL_CHUNK = 512
INITIAL_CAPACITY = 256  # rows of a growing KV cache at its first allocation
INPUTS = ("input_ids", "position_ids")


class CoreAIGraph:
    """One loaded Core AI function with its states, called with the contract's two inputs."""

    def __init__(self, asset: Path, function: str, max_context: int) -> None:
        from ..backends.coreai.runtime import AimodelSession

        _require_executable_here(asset)
        self.session = AimodelSession(asset, function)
        if tuple(self.session.input_names) != INPUTS:
            self.session.close()
            raise VerifyError(
                f"{asset}: function {function!r} takes inputs {self.session.input_names}, "
                f"the engines feed exactly {list(INPUTS)}", "rebuild the bundle with this zootool",
            )
        self.max_context = max_context
        self.logits_name = self.session.output_names[0]
        self.state: dict[str, Any] = {}
        self.capacity = 0

    @property
    def query_len(self) -> int | None:
        """Tokens per call when ``input_ids`` is static, else ``None``."""
        size = self.session.input_shape("input_ids")[1]
        return size if size > 0 else None

    def reset(self) -> None:
        self.state, self.capacity = {}, 0

    def __call__(self, input_ids: np.ndarray, total: int) -> np.ndarray:
        """Logits ``[q, vocab]`` for ``input_ids [1, q]`` ending at context length ``total``."""
        self._ensure_capacity(total)
        positions = np.arange(total, dtype=np.int32).reshape(1, total)
        outputs = self.session.run({"input_ids": input_ids, "position_ids": positions}, state=self.state)
        return np.asarray(outputs[self.logits_name], dtype=np.float32)[0]

    def _ensure_capacity(self, total: int) -> None:
        if total > self.max_context:
            raise VerifyError(f"context of {total} tokens exceeds max_context_length {self.max_context}")
        if self.state and total <= self.capacity:
            return
        capacity = max(self.capacity, min(INITIAL_CAPACITY, self.max_context))
        while capacity < total:
            capacity = min(capacity * 2, self.max_context)
        self.state = {name: self._grown(name, shape, dtype, capacity) for name, (shape, dtype) in self.session.states.items()}
        self.capacity = capacity

    def _grown(self, name: str, shape: tuple[int, ...], dtype: Any, capacity: int) -> Any:
        """A state of ``capacity`` rows holding the old rows; fixed states are kept as they are."""
        from ..backends.coreai.runtime import new_state

        if name in self.state and -1 not in shape:
            return self.state[name]
        array = np.zeros(tuple(capacity if size < 0 else size for size in shape), dtype=dtype)
        if name in self.state:
            old = self.state[name].numpy()
            axis = shape.index(-1)
            array[tuple(slice(0, old.shape[axis]) if i == axis else slice(None) for i in range(array.ndim))] = old
        return new_state(array)

    def close(self) -> None:
        self.session.close()


def _require_executable_here(asset: Path) -> None:
    """A custom Metal kernel runs on Apple GPUs only; say so before the runtime fails obscurely."""
    import platform

    from ..backends.coreai.export import has_custom_kernel
    from ..backends.coreai.runtime import KernelNotExecutableError

    if platform.system() != "Darwin" and has_custom_kernel(asset):
        raise KernelNotExecutableError(
            f"{asset}: the model contains a custom Metal kernel (coreai.metal4_kernel), which runs on Apple "
            f"GPUs only; this {platform.system()} Core AI runtime is CPU-only",
            "run it on a Mac, or try the same recipe's kernel-free form here (zoo build --kernel gather_mm); "
            "the gate already checks this bundle through such a twin",
        )


class EngineDriver:
    """A bundle's model folder, run as the engines run it; keeps its context between calls."""

    def __init__(self, model_dir: Path, chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD) -> None:
        self.model_dir = Path(model_dir)
        self.metadata: AppMetadata = read_app_metadata(self.model_dir)
        self.chunk_threshold = chunk_threshold
        self.graph = _open_graph(self.model_dir, self.metadata)
        self.context: list[int] = []

    @property
    def vocab_size(self) -> int:
        return self.metadata.language.vocab_size

    def reset(self) -> None:
        """Forget the context (the engines' full reset: fixed states are zeroed too)."""
        self.graph.reset()
        self.context = []

    def feed(self, tokens: Sequence[int]) -> np.ndarray:
        """Append ``tokens`` to the context; logits ``[len(tokens), vocab]`` of each of them."""
        rows = []
        calls = self._calls(list(tokens))
        for number, part in enumerate(calls, 1):
            self.context += part
            logits = self.graph(np.array([part], dtype=np.int32), len(self.context))
            rows.append(self._checked(logits, len(part)))
            step(number, len(calls), "call")
        return np.concatenate(rows) if rows else np.zeros((0, self.vocab_size), np.float32)

    def _calls(self, tokens: list[int]) -> list[list[int]]:
        size = self.graph.query_len
        if size is None:
            size = len(tokens) if len(tokens) <= self.chunk_threshold else min(MAX_PREFILL_CHUNK, self.chunk_threshold)
        return [tokens[i : i + size] for i in range(0, len(tokens), max(size, 1))]

    def _checked(self, logits: np.ndarray, query_len: int) -> np.ndarray:
        if logits.shape != (query_len, self.vocab_size):
            raise VerifyError(
                f"{self.model_dir}: logits are {list(logits.shape)} for {query_len} token(s); "
                f"metadata.json promises [{query_len}, {self.vocab_size}]", "rebuild the bundle",
            )
        return logits

    def close(self) -> None:
        self.graph.close()

    def __enter__(self) -> EngineDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_graph(model_dir: Path, metadata: AppMetadata) -> Any:
    asset = model_dir / metadata.assets.main
    if not asset.is_dir():
        raise VerifyError(f"{model_dir}/metadata.json: assets.main {metadata.assets.main!r} is not in the folder")
    max_context = metadata.language.max_context_length
    if metadata.assets.format == "mlpackage":
        from ..backends.coremltools.runtime import CoreMLGraph

        return CoreMLGraph(asset, max_context)
    return CoreAIGraph(asset, metadata.main_function, max_context)


def teacher_forced_logits(model_dir: Path, token_ids: Sequence[int]) -> np.ndarray:
    """Logits ``[len, vocab]`` of feeding ``token_ids`` from an empty context, engine-style."""
    with EngineDriver(model_dir) as driver:
        return driver.feed(token_ids)
