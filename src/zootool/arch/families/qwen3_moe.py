"""Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3 attention, softmax-routed SwiGLU experts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Array, Count
from ..decoder_config import DecoderConfig
from ..layout import Attention, FeedForward, Moe, Norm
from ..rules import at_most
from ..scaffolds import MOE
from ..weight_names import WeightNames

QWEN_MOE_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "moe.router": "mlp.gate",
           "moe": "mlp"},
    experts={"gate_up_proj": ("gate_proj", "up_proj"), "down_proj": ("down_proj",)},
)
_MOE_KEYS = ("moe_intermediate_size", "num_experts", "num_experts_per_tok", "norm_topk_prob", "decoder_sparse_step")


class Qwen3MoeArch(DecoderConfig):
    """A Qwen3-MoE decoder; layers in ``mlp-only-layers`` (or off the ``decoder-sparse-step``) stay dense."""

    family_tag: ClassVar[str] = "qwen3_moe"
    model_types: ClassVar[tuple[str, ...]] = ("qwen3_moe",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen3_moe": "Qwen3MoeForCausalLM"}
    weight_names: ClassVar[WeightNames] = QWEN_MOE_NAMES
    scaffold = MOE

    family: Literal["qwen3_moe"]
    model_type: Literal["qwen3_moe"] = "qwen3_moe"
    moe_intermediate_size: Count
    num_experts: Count
    num_experts_per_tok: Count
    norm_topk_prob: bool = False
    decoder_sparse_step: int = Field(default=1, ge=1, le=MAX_LAYERS)
    mlp_only_layers: Array[int] = ()

    @model_validator(mode="after")
    def _routing(self) -> Self:
        at_most("num-experts-per-tok", self.num_experts_per_tok, "num-experts", self.num_experts)
        return self

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qk_norm="head", norm=Norm(self.rms_norm_eps))

    def ffn(self, index: int) -> FeedForward:
        if index in self.mlp_only_layers or (index + 1) % self.decoder_sparse_step:
            return super().ffn(index)
        return Moe(
            hidden=self.hidden_size, experts=self.num_experts, top_k=self.num_experts_per_tok,
            intermediate=self.moe_intermediate_size, routing="softmax", renormalize=self.norm_topk_prob,
        )

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        values = super().hf_values(hf) | {key: getattr(hf, key) for key in _MOE_KEYS}
        return values | {"mlp_only_layers": tuple(hf.mlp_only_layers or ())}

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {key: getattr(self, key) for key in _MOE_KEYS}
        return config | {"mlp_only_layers": list(self.mlp_only_layers), "attention_bias": self.attention_bias}



