"""Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3 attention, softmax-routed SwiGLU experts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal

from ..layout import Attention, Norm
from ..scaffolds import MOE
from ..sparse_config import SparseStepConfig
from ..weight_names import WeightNames

QWEN_MOE_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "moe.router": "mlp.gate",
           "moe": "mlp"},
    experts={"gate_up_proj": ("gate_proj", "up_proj"), "down_proj": ("down_proj",)},
)


class Qwen3MoeArch(SparseStepConfig):
    """A Qwen3-MoE decoder; layers in ``mlp-only-layers`` (or off the ``decoder-sparse-step``) stay dense."""

    family_tag: ClassVar[str] = "qwen3_moe"
    model_types: ClassVar[tuple[str, ...]] = ("qwen3_moe",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen3_moe": "Qwen3MoeForCausalLM"}
    weight_names: ClassVar[WeightNames] = QWEN_MOE_NAMES
    scaffold = MOE

    family: Literal["qwen3_moe"]
    model_type: Literal["qwen3_moe"] = "qwen3_moe"

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qk_norm="head", norm=Norm(self.rms_norm_eps))

    def to_hf(self) -> dict[str, Any]:
        return super().to_hf() | {"attention_bias": self.attention_bias}
