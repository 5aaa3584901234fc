"""Bundle size estimate from the architecture's tensors and the scheme's storage formats."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from ..arch.base import TensorSpec
from ..config.zoo_data import Kernel, QuantSpec, Scheme
from ..kernels.rules import stored_k

FP16_BYTES = 2


class GroupEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    tensors: int
    params: int
    storage: str
    bytes: int


class SizeEstimate(BaseModel):
    """Parameter count (tied weights once, as transformers counts) and stored bytes."""

    model_config = ConfigDict(frozen=True)

    params: int
    stored_tensors: int
    weight_bytes: int
    program_bytes: int = 0  # the converted program beside the weights (plan.program; 0: not modelled)
    groups: dict[str, GroupEstimate]

    @property
    def model_bytes(self) -> int:
        """The whole model file: weights and program."""
        return self.weight_bytes + self.program_bytes


def tensor_bytes(spec: TensorSpec, quant: QuantSpec | None, k_multiple: int | None = None) -> int:
    """Stored bytes of one tensor; 1-D tensors (norms, biases) always stay fp16."""
    if quant is None or len(spec.shape) < 2:
        return spec.numel * FP16_BYTES
    *lead, k = spec.shape
    k = stored_k(spec.group, quant.method, k)
    if k_multiple:
        k = math.ceil(k / k_multiple) * k_multiple
    rows = math.prod(lead)
    blocks = rows * math.ceil(k / (quant.block_size or k))
    per_block_bits = quant.scale_bits + quant.zero_point_bits + quant.lut_bits
    return math.ceil(rows * k * quant.bits / 8) + math.ceil(blocks * per_block_bits / 8)


def storage_label(quant: QuantSpec | None) -> str:
    if quant is None:
        return "fp16"
    per = f"block{quant.block_size}" if quant.block_size else "row"
    return f"{quant.method}-int{quant.bits}/{per}"


def estimate(tensors: list[TensorSpec], scheme: Scheme, kernel: Kernel, program_bytes: int = 0) -> SizeEstimate:
    """Estimate stored bytes of one asset (a tied head is the embedding, stored once)."""
    groups: dict[str, list[int]] = {}
    for spec in tensors:
        quant = scheme.quantize.get(spec.group)
        k_multiple = kernel.k_multiple if spec.group == "experts" and kernel.kind == "metal" else None
        counts = groups.setdefault(spec.group, [0, 0, 0])
        counts[0] += 1
        counts[1] += spec.numel if spec.parameter else 0
        counts[2] += tensor_bytes(spec, quant, k_multiple)
    by_group = {
        name: GroupEstimate(
            tensors=c[0], params=c[1], storage=storage_label(scheme.quantize.get(name)), bytes=c[2]
        )
        for name, c in groups.items()
    }
    return SizeEstimate(
        params=sum(g.params for g in by_group.values()),
        stored_tensors=len(tensors),
        weight_bytes=sum(g.bytes for g in by_group.values()),
        program_bytes=program_bytes,
        groups=by_group,
    )
