"""How the gate runs a plan's fp16 ceiling and candidate on Linux, chosen from the plan alone.

Two ways (``gate.run``):

* ``engine``: each side is exported and run through the Core AI CPU runtime by the engine
  driver, call by call as Apple's engines run it. Faithful, and slow: that runtime
  multiplies at about 30 M multiply-adds a second for a dense decoder (SmolLM2-135M-Instruct:
  a side of 81 tokens in about 5 min; issue 25 measured 11 min for both sides and the fp16
  export) and 17 M for a MoE one through its kernel-free twin (``bench/coreai_runtime_rate.py``:
  89 s per LFM2.5-8B-A1B token, whose ~1.5 G multiply-adds are its active parameters).
* ``streamed``: the same decode graph in torch, fp16, one decoder layer in memory at a time
  (``gate.streamed``), each layer's weights quantized by the export's own code. Seconds per
  layer instead of minutes to hours per side; it is not the converted program, and the
  transcript says so. So a streamed gate also runs the converted program itself over the
  first few tokens it feeds and compares it with the streamed candidate there
  (``conversion_check_tokens``: as many as fit ``CONVERSION_CHECK_SECONDS``, at least one).

The plan picks ``streamed`` where one engine side would take longer than
``ENGINE_SIDE_LIMIT_SECONDS``; ``zoo gate --runtime`` overrides it. Only a backend that
quantizes torch modules while they load (Core AI) can stream: a Core ML package's
weights are compressed by its converter, after the graph.
"""

from __future__ import annotations

from typing import Any, Literal


GateRuntime = Literal["engine", "streamed"]
GATE_RUNTIMES: tuple[str, ...] = ("engine", "streamed")
# Measured on this zoo's 2-core machines, one prefill call of the whole teacher-forced feed:
DENSE_MACS_PER_SECOND = 30e6  # SmolLM2-135M-Instruct int8-all / fp16: 4.1-4.7 s a token (134.5 M weights)
MOE_MACS_PER_SECOND = 17e6  # LFM2.5-8B-A1B's kernel-free twin: 1.5e9 active multiply-adds in 89 s
PROMPT_TOKENS = 40  # about the chat-templated gate prompt (gate.run.PROMPT) in the zoo's tokenizers
# Time a build's gate may spend on one engine side (5 min). SmolLM2-135M's ~6 min side streams:
# its whole engine gate (two sides and the fp16 export) is ~12 min against ~1 min streamed.
ENGINE_SIDE_LIMIT_SECONDS = 300.0
CONVERSION_CHECK_SECONDS = 60.0  # what a streamed gate spends running the converted program
CONVERSION_CHECK_MAX_TOKENS = 8
STREAMING_BACKENDS = frozenset({"coreai"})


def token_seconds(active: int, moe: bool = False) -> float:
    """Predicted wall time of one token through the Linux Core AI CPU runtime."""
    return active / (MOE_MACS_PER_SECOND if moe else DENSE_MACS_PER_SECOND)


def engine_side_seconds(active: int, positions: int, moe: bool = False) -> float:
    """Predicted wall time of one teacher-forced side through the Linux Core AI CPU runtime."""
    return (positions + PROMPT_TOKENS) * token_seconds(active, moe)


def choose_gate_runtime(backend: str, active: int, positions: int, moe: bool = False) -> GateRuntime:
    if backend not in STREAMING_BACKENDS:
        return "engine"
    return "streamed" if engine_side_seconds(active, positions, moe) > ENGINE_SIDE_LIMIT_SECONDS else "engine"


def _arch_active(arch: Any) -> tuple[int, bool]:
    """(active parameters, whether experts are routed) of an architecture (``arch.layout``)."""
    layout = arch.layout()
    return layout.active_params(), layout.routed_experts


def gate_runtime_of(arch: Any, backend: str, positions: int) -> GateRuntime:
    """The plan's choice for an architecture (routed experts count by their share)."""
    active, moe = _arch_active(arch)
    return choose_gate_runtime(backend, active, positions, moe)


def engine_side_seconds_of(arch: Any, positions: int) -> float:
    active, moe = _arch_active(arch)
    return engine_side_seconds(active, positions, moe)


def conversion_check_tokens(arch: Any) -> int:
    """Tokens a streamed gate runs through the converted program: what fits ``CONVERSION_CHECK_SECONDS``."""
    active, moe = _arch_active(arch)
    fitting = int(CONVERSION_CHECK_SECONDS // token_seconds(active, moe))
    return max(1, min(CONVERSION_CHECK_MAX_TOKENS, fitting))


def streaming_refusal(backend: str) -> str | None:
    """Why ``--runtime streamed`` cannot gate this backend, or None."""
    if backend in STREAMING_BACKENDS:
        return None
    return (f"the streamed gate quantizes torch modules as they load; backend {backend!r} compresses "
            "its converted program instead")
