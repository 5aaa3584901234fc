"""What each stage of a build needs from the machine: peak memory and disk, from the plan alone.

Pure arithmetic on the architecture's tensors and the scheme's storage (no torch, no disk),
so ``zoo plan`` and ``zoo list`` stay fast; ``resources`` compares the figures with the
machine before a stage starts. A stage runs in phases one after another; its peak is the
largest phase. The constants were measured on this zoo's Linux machines (torch 2.13 CPU,
coreai-torch 0.4.3; anonymous and file-backed resident memory sampled every 5 ms through
each phase of an export of a 101.5M-parameter synthetic LFM2-MoE from a bf16 checkpoint).

**export** (``export.export_model``, in a child process), two phases:

* *load and quantize*: the decode graph is built on the meta device and filled unit by unit
  (one decoder layer, or one top-level module) from the checkpoint, cast to fp16, and each
  unit is quantized as soon as it is complete (``export.build_graph``); glibc is asked to
  return the freed pages and the checkpoint's maps are dropped after each unit. Resident:
  the stored weights so far, plus one unit at fp16 (``largest layer x 2``), plus the
  temporaries of the tensor at work: about three checkpoint-dtype copies of a stacked
  expert tensor while it loads (per-expert concatenations, the stack, the cast), and fp32
  temporaries of one expert slab while ``quantize_symmetric`` works (``slab x 4 x 3``).
  4-bit k-means (``backends.kmeans``) works on 4096-row chunks, one per worker thread (at
  most ``parallel.MAX_WORKERS``), each holding fp32 rows, int64 sort order, sorted rows and
  fp64 prefix sums plus compaction copies (about 30 bytes an element), and gathers the
  whole tensor's uint8 codes twice (the chunk results, then ``cat``). Sub-byte codes stay a
  byte each in torch (k-means indices uint8, 4-bit symmetric codes int8) until the converter
  packs them: the stored weights so far count those at 8 bits (``_unpacked_codes``).
* *convert and save*: the converter packs sub-byte codes (each unpacked original is freed
  once packed), copies each stored weight into the Core AI program and drops the torch copy
  as it goes (``backends.coreai.consume``), and the save hashes the
  file in pieces instead of reading it back whole (``backends.coreai_save``): one copy of
  the stored weights (``CONVERTER_COPIES``) plus the largest tensor, alive twice for a moment.

Both add ``EXPORT_RUNTIME_BYTES`` for Python, torch, the Core AI stack and the fixed cost of
``torch.export`` and the converter (0.24-0.35 GB after the imports). Measured on a 4-layer
LFM2.5-8B-A1B (1.05B parameters, sym8, 1.44 GB stored): load and quantize 3.35 GB peak
(predicted 4.0), convert 2.46 GB (2.46); on the full flagship see README "The flagship at
full size". Disk: the ``.aimodel`` is written once beside its final name and renamed
(``backends.coreai._save``): the stored bytes plus ``DISK_MARGIN`` for the tokenizer,
metadata and the size estimate's own error.

**gate** (in the build process), phases one after another: the streamed fp32 oracle
(``oracle``) holds one decoder layer in fp32 and the transients of loading it, measured
2.7x one fp32 layer for an LFM2.5-8B-A1B-sized MoE layer (``largest layer x 4 x 3``), plus
one block of the head and its logits (``HEAD_BLOCK_ROWS`` rows, fp32, twice) and
transformers; each layer is dropped after it runs. The fp16 ceiling is an export as above
with fp16 stored weights (counted even when the gate's ceiling cache would spare it) and,
where the kernel cannot run on Linux, the kernel-free twin is one with the bundle's own.
Their disk is the temporary directory's: the fp16 copy (``params x 2``) and the twin.
Where the plan's gate runtime is ``streamed`` (``plan.gate_runtime``; the flagship's), the fp16
ceiling and the candidate run in torch one decoder layer at a time instead (``gate.streamed``):
no export and no disk, each phase one layer plus what lives outside the layers.

**export on the Core ML backend** (``backends.coremltools.export``) loads the whole graph at
fp16 (Core ML compresses the converted program, not torch modules, so nothing is quantized
while loading), casts it to fp32 for ``torch.jit.trace`` (the fp16 copy freed parameter by
parameter), and converts: ``ct.convert`` keeps the fp32 torch module, copies every weight into
the MIL program, casts the constants to fp16 and then compresses them. Measured (2026-12,
int8-all, random bf16 checkpoints of the SmolLM2-135M and Qwen3-0.6B shapes, 134.5M and 596.0M
parameters): peaks of 0.71 / 1.83 GB loading, 1.16 / 3.37 GB tracing and 2.37 / 9.60 GB
converting, i.e. 15.1-15.5 bytes a parameter above the runtime while converting (about four
fp32 copies; ``COREML_CONVERT_BYTES_PER_PARAM``), where the Core AI model above predicted
0.99 / 3.03 GB. The compress and save phases stay below the convert peak. The gate's fp16
ceiling of a Core ML target is such an export too (the SmolLM2-135M-shaped gate peaked at
2.31 GB), and its candidate is the package's weights read back into an fp16 torch module.

**fetch**: a Hub checkpoint is downloaded in its own dtype, taken to be bf16 (2 bytes a
parameter, as Hub LLM checkpoints are published; an fp32 upstream needs twice the disk),
into the Hugging Face cache, streaming (``DOWNLOAD_RUNTIME_BYTES``); a generated fixture is
bf16 too, streamed in constant memory (``zootool.fetch.synthetic``: under 400 MiB for the
flagship), into ``.zoo-cache``. A checkpoint already there needs nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..arch.base import TensorSpec
from ..config.zoo_data import Kernel, QuantSpec, Scheme
from .estimate import FP16_BYTES, SizeEstimate, tensor_bytes

GB = 10**9
FP32_BYTES = 4
WORKING_BYTES = FP16_BYTES  # the export's working dtype (export.build_graph)
CHECKPOINT_BYTES = 2  # bf16, on the Hub and as zootool.synthetic writes fixtures
EXPORT_RUNTIME_BYTES = GB // 2  # Python + torch + Core AI stack + torch.export/converter fixed cost
ORACLE_RUNTIME_BYTES = GB // 10  # transformers on top of the export's runtime
GENERATE_RUNTIME_BYTES = GB * 45 // 100  # zootool.synthetic streams slices: constant memory
DOWNLOAD_RUNTIME_BYTES = GB * 3 // 10  # huggingface_hub streams files to disk
LOAD_COPIES = 3  # checkpoint-dtype copies of one stacked expert tensor while it loads
QUANT_TEMPORARIES = 3  # fp32 copies of one expert slab (or 2-D tensor) alive in quantize_symmetric
KMEANS_CHUNK_ROWS = 4096  # backends.kmeans.kmeans_rows works on this many rows at once
KMEANS_WORKERS = 4  # parallel.MAX_WORKERS: chunks in flight at once
KMEANS_BYTES_PER_CHUNK_ELEMENT = 30  # fp32 rows, int64 order, sorted rows, fp64 prefix sums, compaction
KMEANS_CODE_COPIES = 2  # uint8 codes of the whole tensor: the chunk results, then torch.cat
CONVERTER_COPIES = 1  # stored-weight copies alive while converting (backends.coreai_consume)
# Core ML: bytes a parameter above the runtime while ct.convert runs (measured 15.1-15.5, see above),
# and while tracing (the module cast to fp32 beside what is left of its fp16 copy).
COREML_CONVERT_BYTES_PER_PARAM = 15.5
COREML_TRACE_BYTES_PER_PARAM = FP16_BYTES + FP32_BYTES
COREML = "coremltools"
ORACLE_LAYER_FACTOR = 3  # measured 2.7x one fp32 layer (zootool.oracle)
HEAD_BLOCK_ROWS = 8192  # oracle.HEAD_BLOCK_ROWS: head rows (and logits) read at once
DISK_MARGIN = 1.1
STREAMED_LOGIT_ROWS = 512  # more than any gate's prompt + positions (gate.positions is at most a few hundred)
LAYER = re.compile(r"^layers\.(\d+)\.")  # canonical graph names (arch.layout)

Location = Literal["cache", "build", "temp"]


class StageResources(BaseModel):
    """One stage's predicted peak memory and the disk it writes.

    ``phases`` are the stage's steps, each with the resident memory it needs; they run one
    after another, so ``memory_bytes`` is the largest.
    """

    model_config = ConfigDict(frozen=True)

    memory_bytes: int
    disk_bytes: int
    disk_location: Location  # cache: checkpoints; build: build/<id>/; temp: the temporary directory
    phases: dict[str, int]


class ResourceEstimate(BaseModel):
    """Per-stage needs of a build (``fetch``, ``export``, ``gate``), predicted from the plan."""

    model_config = ConfigDict(frozen=True)

    stages: dict[str, StageResources]


def _stage(phases: dict[str, int], disk: float, location: Location) -> StageResources:
    return StageResources(memory_bytes=max(phases.values()), disk_bytes=math.ceil(disk),
                          disk_location=location, phases=phases)


def resource_estimate(
    tensors: list[TensorSpec], sizes: SizeEstimate, scheme: Scheme, kernel: Kernel, *, generated: bool,
    gate_runtime: str = "engine", backend: str = "coreai",
) -> ResourceEstimate:
    """Predict fetch, export and gate needs; ``generated``: the checkpoint is a seeded fixture."""
    fp16_bytes = sum(spec.numel * FP16_BYTES for spec in tensors)
    transient = _transient(tensors, scheme.quantize)
    unpacked = _unpacked_codes(tensors, scheme.quantize)
    if backend == COREML:  # nothing is quantized in torch but k-means clustering
        export = coreml_export_phases(tensors, _transient(tensors, _kmeans_only(scheme.quantize)))
        gate = _coreml_gate(tensors, fp16_bytes)
    else:
        export = export_phases(tensors, sizes.weight_bytes, transient, unpacked)
        gate = (_streamed_gate(tensors, scheme, transient) if gate_runtime == "streamed"
                else _gate(tensors, sizes, kernel, fp16_bytes, transient, unpacked))
    return ResourceEstimate(stages={
        "fetch": _fetch(sizes.params, generated),
        "export": _stage(export, sizes.weight_bytes * DISK_MARGIN, "build"),
        "gate": gate,
    })


def export_phases(tensors: list[TensorSpec], stored_bytes: int, transient: int, unpacked: int = 0) -> dict[str, int]:
    """Load and quantize unit by unit, then convert (consuming the torch copy) and save.

    ``unpacked``: what sub-byte codes add while torch holds them a byte each (``_unpacked_codes``).
    """
    largest = max((spec.numel for spec in tensors), default=0) * WORKING_BYTES
    held = stored_bytes + unpacked
    return {
        "load_and_quantize": EXPORT_RUNTIME_BYTES + held + _largest_layer(tensors) * WORKING_BYTES + transient,
        "convert_and_save": EXPORT_RUNTIME_BYTES + stored_bytes * CONVERTER_COPIES + largest,
    }


def coreml_export_phases(tensors: list[TensorSpec], transient: int) -> dict[str, int]:
    """Load the whole graph at fp16, trace it at fp32, then convert and compress (see the module's notes)."""
    params = sum(spec.numel for spec in tensors)
    return {
        "load": EXPORT_RUNTIME_BYTES + params * WORKING_BYTES + transient,
        "trace": EXPORT_RUNTIME_BYTES + params * COREML_TRACE_BYTES_PER_PARAM,
        "convert_and_compress": EXPORT_RUNTIME_BYTES + math.ceil(params * COREML_CONVERT_BYTES_PER_PARAM),
    }


def _kmeans_only(quantize: Mapping[str, QuantSpec]) -> dict[str, QuantSpec]:
    return {group: spec for group, spec in quantize.items() if spec.method == "kmeans"}


def _coreml_gate(tensors: list[TensorSpec], fp16_bytes: int) -> StageResources:
    """The oracle, the fp16 ceiling exported through Core ML, the candidate read back into torch fp16."""
    params = sum(spec.numel for spec in tensors)
    phases = {"oracle": _oracle(tensors), **_prefixed("fp16", coreml_export_phases(tensors, _transient(tensors, {}))),
              "candidate_readback": EXPORT_RUNTIME_BYTES + params * (FP32_BYTES + FP16_BYTES)}
    return _stage(phases, fp16_bytes * DISK_MARGIN, "temp")


def _unpacked_codes(tensors: list[TensorSpec], quantize: Mapping[str, QuantSpec]) -> int:
    """Bytes beyond the stored ones while sub-byte codes sit in torch a byte each (k-means
    indices as uint8, 4-bit symmetric codes as int8), until the converter packs them."""
    extra = 0
    for spec in tensors:
        quant = quantize.get(spec.group)
        if quant is not None and quant.bits < 8 and len(spec.shape) >= 2:
            extra += spec.numel * (8 - quant.bits) // 8
    return extra


def _transient(tensors: list[TensorSpec], quantize: Mapping[str, QuantSpec]) -> int:
    """The largest temporaries while one tensor loads or is quantized."""
    return max((_tensor_transient(spec, quantize.get(spec.group)) for spec in tensors), default=0)


def _tensor_transient(spec: TensorSpec, quant: QuantSpec | None) -> int:
    # A stacked expert tensor is read as per-expert parts, stacked, then cast.
    load = spec.numel * CHECKPOINT_BYTES * LOAD_COPIES if len(spec.shape) > 2 else 0
    if quant is None or len(spec.shape) < 2:
        return load
    if quant.method == "kmeans":
        rows = min(KMEANS_CHUNK_ROWS * KMEANS_WORKERS, math.prod(spec.shape[:-1]))
        chunks = rows * spec.shape[-1] * KMEANS_BYTES_PER_CHUNK_ELEMENT
        return max(load, chunks + spec.numel * KMEANS_CODE_COPIES)
    slab = math.prod(spec.shape[-2:])  # quantize_symmetric works one expert at a time
    return max(load, slab * FP32_BYTES * QUANT_TEMPORARIES)


def _fetch(params: int, generated: bool) -> StageResources:
    phases = {"generate": GENERATE_RUNTIME_BYTES} if generated else {"download": DOWNLOAD_RUNTIME_BYTES}
    return _stage(phases, params * CHECKPOINT_BYTES * DISK_MARGIN, "cache")


def _prefixed(prefix: str, phases: dict[str, int]) -> dict[str, int]:
    return {f"{prefix}_{name}": value for name, value in phases.items()}


def _gate(tensors: list[TensorSpec], sizes: SizeEstimate, kernel: Kernel, fp16_bytes: int,
          transient: int, unpacked: int) -> StageResources:
    load = _transient(tensors, {})
    phases = {"oracle": _oracle(tensors), **_prefixed("fp16", export_phases(tensors, fp16_bytes, load))}
    twin = 0 if kernel.runs_on_linux else sizes.weight_bytes
    if twin:
        phases |= _prefixed("twin", export_phases(tensors, twin, transient, unpacked))
    return _stage(phases, (fp16_bytes + twin) * DISK_MARGIN, "temp")


def _streamed_gate(tensors: list[TensorSpec], scheme: Scheme, transient: int) -> StageResources:
    """The oracle, then each side in torch with one decoder layer in memory (``gate.streamed``)."""
    layer = _largest_layer(tensors) * WORKING_BYTES
    outside = [spec for spec in tensors if not LAYER.match(spec.name)]
    fp16_outside = sum(spec.numel for spec in outside) * WORKING_BYTES
    stored_outside = sum(tensor_bytes(spec, scheme.quantize.get(spec.group)) for spec in outside)
    logits = STREAMED_LOGIT_ROWS * _vocab(tensors) * FP32_BYTES * 2  # fp16 logits, then their fp32 copy
    # A layer at fp16 as it loads, plus its experts dequantized back to fp16 for the eager matmul.
    fp16 = EXPORT_RUNTIME_BYTES + fp16_outside + layer + _transient(tensors, {}) + logits
    candidate = EXPORT_RUNTIME_BYTES + stored_outside + layer * 2 + transient + logits
    phases = {"oracle": _oracle(tensors), "fp16_streamed": fp16, "candidate_streamed": candidate}
    return _stage(phases, 0, "temp")


def _oracle(tensors: list[TensorSpec]) -> int:
    return (EXPORT_RUNTIME_BYTES + ORACLE_RUNTIME_BYTES + HEAD_BLOCK_ROWS * _hidden(tensors) * FP32_BYTES * 2
            + _largest_layer(tensors) * FP32_BYTES * ORACLE_LAYER_FACTOR)


def _hidden(tensors: list[TensorSpec]) -> int:
    return next((spec.shape[-1] for spec in tensors if spec.group == "embedding"), 0)


def _vocab(tensors: list[TensorSpec]) -> int:
    return next((spec.shape[0] for spec in tensors if spec.group == "embedding"), 0)


def _largest_layer(tensors: list[TensorSpec]) -> int:
    """Parameters of the largest decoder layer (``layers.N.*``)."""
    layers: dict[str, int] = {}
    for spec in tensors:
        match = LAYER.match(spec.name)
        if match and spec.parameter:
            layers[match.group(1)] = layers.get(match.group(1), 0) + spec.numel
    return max(layers.values(), default=0)
