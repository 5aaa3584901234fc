"""How the gate runs a plan's fp16 ceiling and candidate on Linux, chosen from the plan alone.

Two ways (``gate.run``):

* ``engine``: each side is exported and run through the Core AI CPU runtime by the engine
  driver, call by call as Apple's engines run it. Faithful, and slow: that runtime does
  about 17 M multiply-adds a second on these machines (``bench/coreai_runtime_rate.py``:
  89 s per LFM2.5-8B-A1B token, whose ~1.5 G multiply-adds are its active parameters), and
  the fp16 ceiling is a whole fp16 export (17 GB for the flagship).
* ``streamed``: the same decode graph in torch, fp16, one decoder layer in memory at a time
  (``gate.streamed``), each layer's weights quantized by the export's own code. Seconds per
  layer instead of hours per side; it is not the converted program, and the transcript says so.

The plan picks ``streamed`` where one engine side would take longer than
``ENGINE_SIDE_LIMIT_SECONDS``; ``zoo gate --runtime`` overrides it. Only a backend that
quantizes torch modules while they load (Core AI) can stream: a Core ML package's
weights are compressed by its converter, after the graph.
"""

from __future__ import annotations

from typing import Any, Literal


GateRuntime = Literal["engine", "streamed"]
GATE_RUNTIMES: tuple[str, ...] = ("engine", "streamed")
CORE_AI_CPU_MACS_PER_SECOND = 17e6  # measured: 1.5e9 active multiply-adds in 89 s
PROMPT_TOKENS = 40  # about the chat-templated gate prompt (gate.run.PROMPT) in the zoo's tokenizers
ENGINE_SIDE_LIMIT_SECONDS = 600.0
STREAMING_BACKENDS = frozenset({"coreai"})


def engine_side_seconds(active: int, positions: int) -> float:
    """Predicted wall time of one teacher-forced side through the Linux Core AI CPU runtime."""
    return (positions + PROMPT_TOKENS) * active / CORE_AI_CPU_MACS_PER_SECOND


def choose_gate_runtime(backend: str, active: int, positions: int) -> GateRuntime:
    if backend not in STREAMING_BACKENDS:
        return "engine"
    return "streamed" if engine_side_seconds(active, positions) > ENGINE_SIDE_LIMIT_SECONDS else "engine"


def gate_runtime_of(arch: Any, backend: str, positions: int) -> GateRuntime:
    """The plan's choice for an architecture (routed experts count by their share, ``layout.active_params``)."""
    return choose_gate_runtime(backend, arch.layout().active_params(), positions)


def streaming_refusal(backend: str) -> str | None:
    """Why ``--runtime streamed`` cannot gate this backend, or None."""
    if backend in STREAMING_BACKENDS:
        return None
    return (f"the streamed gate quantizes torch modules as they load; backend {backend!r} compresses "
            "its converted program instead")
