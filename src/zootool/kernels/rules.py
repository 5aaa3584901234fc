"""What the expert kernels read, said once; torch-free, so the planner and both backends can ask."""

from __future__ import annotations

from typing import Any

GATHER_QMM = "gather_qmm"
# gather_qmm reads int8 slabs with fp16 block scales ("sym8"): no other expert storage.
GATHER_QMM_READS = ("symmetric", 8)
GATHER_QMM_HINT = "use kernel = \"gather_mm\" for this scheme, or a scheme with sym8 experts"
# Symmetric expert stacks are stored in gather_qmm's layout whatever the kernel (the gate's
# kernel-free twin reads the same codes): K padded to a multiple of this (32 lanes x 8 weights).
EXPERT_K_MULTIPLE = 256


def stored_k(group: str, method: str | None, k: int) -> int:
    """The K a tensor is stored with: symmetric expert stacks pad it to ``EXPERT_K_MULTIPLE``."""
    if group == "experts" and method == "symmetric":
        return -(-k // EXPERT_K_MULTIPLE) * EXPERT_K_MULTIPLE
    return k


def gather_qmm_refusal(scheme: Any) -> str | None:
    """Why ``gather_qmm`` cannot read the expert weights of ``scheme``, or None when it can.

    A scheme that leaves the experts fp16 is not refused here: the kernel then simply has
    nothing to read, which the Core AI export reports once it sees the graph.
    """
    experts = scheme.quantize.get("experts")
    if experts is None or (experts.method, experts.bits) == GATHER_QMM_READS:
        return None
    return (f"kernel gather_qmm reads sym8 expert weights; scheme {scheme.id!r} stores them as "
            f"{experts.method} {experts.bits}-bit")
