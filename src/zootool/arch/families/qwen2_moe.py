"""Qwen2-MoE (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): Qwen2 attention, softmax-routed experts beside a gated shared expert."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from ...config.schema_base import Count
from ..layout import Attention, Mlp, Moe
from ..scaffolds import MOE
from ..sparse_config import SPARSE_KEYS, SparseStepConfig
from ..weight_names import WeightNames

QWEN2_MOE_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "moe.router": "mlp.gate",
           "moe.shared_gate": "mlp.shared_expert_gate", "moe.shared": "mlp.shared_expert", "moe": "mlp"},
    experts={"gate_up_proj": ("gate_proj", "up_proj"), "down_proj": ("down_proj",)},
)


class Qwen2MoeArch(SparseStepConfig):
    """A Qwen2-MoE decoder; every sparse layer adds a shared expert gated by ``sigmoid(w . x)``."""

    family_tag: ClassVar[str] = "qwen2_moe"
    model_types: ClassVar[tuple[str, ...]] = ("qwen2_moe",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen2_moe": "Qwen2MoeForCausalLM"}
    weight_names: ClassVar[WeightNames] = QWEN2_MOE_NAMES
    scaffold = MOE
    hf_sparse_keys: ClassVar[tuple[str, ...]] = (*SPARSE_KEYS, "shared_expert_intermediate_size", "qkv_bias")

    family: Literal["qwen2_moe"]
    model_type: Literal["qwen2_moe"] = "qwen2_moe"
    shared_expert_intermediate_size: Count
    qkv_bias: bool = True

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qkv_bias=self.qkv_bias, o_bias=False)

    def routed(self) -> Moe:
        shared = Mlp(self.hidden_size, self.shared_expert_intermediate_size)
        return replace(super().routed(), shared=shared, shared_gate=True)
