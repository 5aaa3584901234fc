"""What each stage of a build needs from the machine: peak memory and disk, from the plan alone.

Pure arithmetic on the architecture's tensors and the scheme's storage (no torch, no disk),
so ``zoo plan`` and ``zoo list`` stay fast; ``resources`` compares the figures with the
machine before a stage starts. A stage runs in phases one after another; its peak is the
largest phase. Constants were measured on this zoo's Linux machines (torch 2.13 CPU,
coreai-torch 0.4.3, peak RSS by phase); ``bench/resource_bench.py`` prints prediction
against measurement.

**export** (``export.export_model``, in a child process), two phases:

* *load and quantize*: the decode graph is built on the meta device and filled tensor by
  tensor from the checkpoint, cast to the working dtype, fp32 (``build_decode_graph``'s
  default) whatever the checkpoint's: ``params x 4``. Quantization then replaces one
  tensor at a time; ``quantize_symmetric`` keeps up to three fp32 temporaries of the tensor
  it works on (``numel x 4 x 3``); 4-bit k-means (``kmeans_rows``) works on 4096 rows at a
  time (fp32 rows, int64 codes, sort and scatter temporaries: about 24 bytes an element)
  and holds the whole tensor's uint8 codes twice (the chunk list, then ``cat``).
* *convert and save*: the module now holds the stored (quantized, fp16) weights, and the
  converter's constants plus the asset being serialised add ``CONVERTER_COPIES`` times
  that again: measured 2.3x (fp16) to 2.5x (sym8) the stored bytes for a 101.5M-parameter
  synthetic LFM2-MoE.

Both add ``EXPORT_RUNTIME_BYTES`` for Python, torch, the Core AI stack and the fixed cost of
``torch.export`` and the converter (the 6.3M-parameter tiny fixture peaks at 0.50 GB).
Measured for the 101.5M-parameter model from a bf16 checkpoint: peak 0.97 GB (sym8) and
1.06 GB (fp16), predicted 1.01 and 1.21 GB; from an fp32 checkpoint the resident peak is
0.3 GB higher, pages of the mmapped checkpoint that the kernel can reclaim (MemAvailable
counts them as available). Disk: the ``.aimodel`` is written once beside its final name
and renamed (``backends.coreai._save``): the stored bytes plus ``DISK_MARGIN`` for the
tokenizer, metadata and the size estimate's own error.

**gate** (in the build process), phases one after another: the streamed fp32 oracle
(``oracle``) holds one decoder layer in fp32 and the transients of loading it, measured
2.7x one fp32 layer for an LFM2.5-8B-A1B-sized MoE layer (``largest layer x 4 x 3``), plus
one block of the head and its logits (``HEAD_BLOCK_ROWS`` rows, fp32, twice) and
transformers; each layer is dropped after it runs, so the oracle and the exports that
follow do not add up. The fp16 ceiling is an export as above with fp16 stored weights
and, where the kernel cannot run on Linux, the kernel-free twin is one with the bundle's
own. Their disk is the temporary directory's: the fp16 copy (``params x 2``) and the twin.

**fetch**: a Hub checkpoint is downloaded in its own dtype, taken to be bf16 (2 bytes a
parameter, as Hub LLM checkpoints are published; an fp32 upstream needs twice the disk),
into the Hugging Face cache, streaming (``DOWNLOAD_RUNTIME_BYTES``); a generated fixture
is written in fp32 by transformers, which holds the fp32 model and a serialised copy
(``params x 4 x 2``), into ``.zoo-cache``. A checkpoint already there needs nothing.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .arch.base import TensorSpec
from .estimate import FP16_BYTES, SizeEstimate
from .zoo_data import Kernel, Scheme

GB = 10**9
FP32_BYTES = 4
WORKING_BYTES = FP32_BYTES  # the export's working dtype: build_decode_graph's fp32
HUB_CHECKPOINT_BYTES = 2  # bf16 on the Hub
GENERATED_CHECKPOINT_BYTES = FP32_BYTES  # checkpoint.generate_tiny_checkpoint writes fp32
EXPORT_RUNTIME_BYTES = GB // 2  # Python + torch + Core AI stack + torch.export/converter fixed cost
ORACLE_RUNTIME_BYTES = GB // 10  # transformers on top of the export's runtime
FETCH_RUNTIME_BYTES = GB * 45 // 100  # torch + transformers while generating a fixture
DOWNLOAD_RUNTIME_BYTES = GB * 3 // 10  # huggingface_hub streams files to disk
QUANT_TEMPORARIES = 3  # fp32 copies of one tensor alive in quantize_symmetric
KMEANS_CHUNK_ROWS = 4096  # backends.coreai_quant.kmeans_rows works on this many rows at once
KMEANS_BYTES_PER_CHUNK_ELEMENT = 24  # fp32 rows + int64 codes + sort and scatter temporaries
KMEANS_CODE_COPIES = 2  # uint8 codes of the whole tensor: the chunk list, then torch.cat
CONVERTER_COPIES = 2.5  # the converter's constants + the asset being saved, beyond the module's own
ORACLE_LAYER_FACTOR = 3  # measured 2.7x one fp32 layer (zootool.oracle)
HEAD_BLOCK_ROWS = 8192  # oracle.HEAD_BLOCK_ROWS: head rows (and logits) read at once
DISK_MARGIN = 1.1
LAYER = re.compile(r"^model\.layers\.(\d+)\.")

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
) -> ResourceEstimate:
    """Predict fetch, export and gate needs; ``generated``: the checkpoint is a seeded fixture."""
    fp16_bytes = sum(spec.numel * FP16_BYTES for spec in tensors)
    transient = _quantize_transient(tensors, scheme)
    export = export_phases(sizes.params, sizes.weight_bytes, transient)
    return ResourceEstimate(stages={
        "fetch": _fetch(sizes.params, generated),
        "export": _stage(export, sizes.weight_bytes * DISK_MARGIN, "build"),
        "gate": _gate(tensors, sizes, kernel, fp16_bytes, transient),
    })


def export_phases(params: int, stored_bytes: int, transient: int) -> dict[str, int]:
    """Load and quantize (fp32 weights and the temporaries), then convert and save."""
    return {
        "load_and_quantize": EXPORT_RUNTIME_BYTES + params * WORKING_BYTES + transient,
        "convert_and_save": EXPORT_RUNTIME_BYTES + math.ceil(stored_bytes * (1 + CONVERTER_COPIES)),
    }


def _quantize_transient(tensors: list[TensorSpec], scheme: Scheme) -> int:
    """The largest temporaries while one tensor is quantized (symmetric blocks or k-means)."""
    largest = 0
    for spec in tensors:
        quant = scheme.quantize.get(spec.group)
        if quant is None or len(spec.shape) < 2:
            continue
        if quant.method == "kmeans":
            rows = min(KMEANS_CHUNK_ROWS, math.prod(spec.shape[:-1]))
            need = rows * spec.shape[-1] * KMEANS_BYTES_PER_CHUNK_ELEMENT + spec.numel * KMEANS_CODE_COPIES
        else:
            need = spec.numel * FP32_BYTES * QUANT_TEMPORARIES
        largest = max(largest, need)
    return largest


def _fetch(params: int, generated: bool) -> StageResources:
    if generated:
        checkpoint = params * GENERATED_CHECKPOINT_BYTES
        phases = {"generate": FETCH_RUNTIME_BYTES + checkpoint * 2}
    else:
        checkpoint = params * HUB_CHECKPOINT_BYTES
        phases = {"download": DOWNLOAD_RUNTIME_BYTES}
    return _stage(phases, checkpoint * DISK_MARGIN, "cache")


def _prefixed(prefix: str, phases: dict[str, int]) -> dict[str, int]:
    return {f"{prefix}_{name}": value for name, value in phases.items()}


def _gate(tensors: list[TensorSpec], sizes: SizeEstimate, kernel: Kernel, fp16_bytes: int,
          transient: int) -> StageResources:
    hidden = next((spec.shape[-1] for spec in tensors if spec.group == "embedding"), 0)
    oracle = (EXPORT_RUNTIME_BYTES + ORACLE_RUNTIME_BYTES + HEAD_BLOCK_ROWS * hidden * FP32_BYTES * 2
              + _largest_layer(tensors) * FP32_BYTES * ORACLE_LAYER_FACTOR)
    phases = {"oracle": oracle, **_prefixed("fp16", export_phases(sizes.params, fp16_bytes, 0))}
    twin = 0 if kernel.runs_on_linux else sizes.weight_bytes
    if twin:
        phases |= _prefixed("twin", export_phases(sizes.params, twin, transient))
    return _stage(phases, (fp16_bytes + twin) * DISK_MARGIN, "temp")


def _largest_layer(tensors: list[TensorSpec]) -> int:
    """Parameters of the largest decoder layer (``model.layers.N.*``)."""
    layers: dict[str, int] = {}
    for spec in tensors:
        match = LAYER.match(spec.name)
        if match and spec.parameter:
            layers[match.group(1)] = layers.get(match.group(1), 0) + spec.numel
    return max(layers.values(), default=0)
