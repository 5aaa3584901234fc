"""Qwen3-Next (Qwen3-Next-80B-A3B): gated delta-net linear attention beside gated full attention, Qwen2-MoE experts.

The mixers are ``arch.delta_config``'s; feed-forwards are softmax-routed experts beside a
sigmoid-gated shared expert, dense on ``mlp-only-layers``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..delta_config import GatedDeltaHybrid
from ..scaffolds import MOE
from ..sparse_config import SPARSE_KEYS
from ..weight_names import WeightNames
from .qwen2_moe import QWEN2_MOE_NAMES, Qwen2MoeArch


class Qwen3NextArch(GatedDeltaHybrid, Qwen2MoeArch):
    """A Qwen3-Next hybrid decoder."""

    family_tag: ClassVar[str] = "qwen3_next"
    model_types: ClassVar[tuple[str, ...]] = ("qwen3_next",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen3_next": "Qwen3NextForCausalLM"}
    weight_names: ClassVar[WeightNames] = QWEN2_MOE_NAMES
    scaffold = MOE
    hf_sparse_keys: ClassVar[tuple[str, ...]] = (*SPARSE_KEYS, "shared_expert_intermediate_size")
    fused_delta: ClassVar[bool] = True

    family: Literal["qwen3_next"]  # type: ignore[assignment]
    model_type: Literal["qwen3_next"] = "qwen3_next"  # type: ignore[assignment]

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        return super().hf_values(hf) | {"qkv_bias": bool(hf.attention_bias)}
