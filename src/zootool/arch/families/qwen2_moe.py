"""Qwen2-MoE (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): Qwen2 attention, softmax-routed experts beside a gated shared expert."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Array, Count
from ..decoder_config import DecoderConfig
from ..layout import Attention, FeedForward, Mlp, Moe
from ..rules import at_most
from ..scaffolds import MOE
from ..weight_names import WeightNames

QWEN2_MOE_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "moe.router": "mlp.gate",
           "moe.shared_gate": "mlp.shared_expert_gate", "moe.shared": "mlp.shared_expert", "moe": "mlp"},
    experts={"gate_up_proj": ("gate_proj", "up_proj"), "down_proj": ("down_proj",)},
)
_MOE_KEYS = ("moe_intermediate_size", "shared_expert_intermediate_size", "num_experts", "num_experts_per_tok",
             "norm_topk_prob", "decoder_sparse_step", "qkv_bias")


class Qwen2MoeArch(DecoderConfig):
    """A Qwen2-MoE decoder; every sparse layer adds a shared expert gated by ``sigmoid(w . x)``."""

    family_tag: ClassVar[str] = "qwen2_moe"
    model_types: ClassVar[tuple[str, ...]] = ("qwen2_moe",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen2_moe": "Qwen2MoeForCausalLM"}
    weight_names: ClassVar[WeightNames] = QWEN2_MOE_NAMES
    scaffold = MOE

    family: Literal["qwen2_moe"]
    model_type: Literal["qwen2_moe"] = "qwen2_moe"
    moe_intermediate_size: Count
    shared_expert_intermediate_size: Count
    num_experts: Count
    num_experts_per_tok: Count
    norm_topk_prob: bool = False
    decoder_sparse_step: int = Field(default=1, ge=1, le=MAX_LAYERS)
    mlp_only_layers: Array[int] = ()
    qkv_bias: bool = True

    @model_validator(mode="after")
    def _routing(self) -> Self:
        at_most("num-experts-per-tok", self.num_experts_per_tok, "num-experts", self.num_experts)
        return self

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qkv_bias=self.qkv_bias, o_bias=False)

    def ffn(self, index: int) -> FeedForward:
        if index in self.mlp_only_layers or (index + 1) % self.decoder_sparse_step:
            return super().ffn(index)
        return Moe(
            hidden=self.hidden_size, experts=self.num_experts, top_k=self.num_experts_per_tok,
            intermediate=self.moe_intermediate_size, routing="softmax", renormalize=self.norm_topk_prob,
            shared=Mlp(self.hidden_size, self.shared_expert_intermediate_size), shared_gate=True,
        )

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        values = super().hf_values(hf) | {key: getattr(hf, key) for key in _MOE_KEYS}
        return values | {"mlp_only_layers": tuple(hf.mlp_only_layers or ())}

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {key: getattr(self, key) for key in _MOE_KEYS}
        return config | {"mlp_only_layers": list(self.mlp_only_layers)}
