"""LFM2-MoE / LFM2.5-MoE: the LFM2 hybrid with sparse MoE feed-forwards (LFM2-8B-A1B, LFM2.5-8B-A1B).

The first ``num-dense-layers`` layers keep a SwiGLU MLP; the rest route each token to
``num-experts-per-tok`` of ``num-experts`` SwiGLU experts by sigmoid scores, with an
expert bias that steers the choice only. Field names mirror ``Lfm2MoeConfig``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Count
from ..layout import FeedForward, Mlp, Moe
from ..rules import at_most
from ..scaffolds import MOE
from .lfm2 import Lfm2Arch

_MOE_KEYS = ("moe_intermediate_size", "num_experts", "num_experts_per_tok", "num_dense_layers", "norm_topk_prob",
             "use_expert_bias", "routed_scaling_factor")


class Lfm2MoeArch(Lfm2Arch):
    """Every number of an LFM2-MoE hybrid."""

    family_tag: ClassVar[str] = "lfm2_moe"
    model_types: ClassVar[tuple[str, ...]] = ("lfm2_moe",)
    causal_lm: ClassVar[dict[str, str]] = {"lfm2_moe": "Lfm2MoeForCausalLM"}
    scaffold = MOE

    family: Literal["lfm2_moe"]  # type: ignore[assignment]
    model_type: Literal["lfm2_moe"] = "lfm2_moe"  # type: ignore[assignment]
    moe_intermediate_size: Count
    num_experts: Count
    num_experts_per_tok: Count
    num_dense_layers: int = Field(ge=0, le=MAX_LAYERS)
    norm_topk_prob: bool = True
    use_expert_bias: bool = True
    routed_scaling_factor: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _routing(self) -> Self:
        at_most("num-experts-per-tok", self.num_experts_per_tok, "num-experts", self.num_experts)
        at_most("num-dense-layers", self.num_dense_layers, "the number of layer-types", self.num_layers)
        return self

    def ffn(self, index: int) -> FeedForward:
        if index < self.num_dense_layers:
            return Mlp(self.hidden_size, self.intermediate_size)
        return Moe(
            hidden=self.hidden_size, experts=self.num_experts, top_k=self.num_experts_per_tok,
            intermediate=self.moe_intermediate_size, routing="sigmoid", renormalize=self.norm_topk_prob,
            expert_bias=self.use_expert_bias, scaling=self.routed_scaling_factor,
        )

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        values = super().hf_values(hf) | {key: getattr(hf, key) for key in _MOE_KEYS}
        values["intermediate_size"] = hf.intermediate_size  # Lfm2MoeMLP takes it as is
        values["routed_scaling_factor"] = float(values["routed_scaling_factor"])
        return values

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {key: getattr(self, key) for key in _MOE_KEYS}
        config.pop("block_auto_adjust_ff_dim")
        return config
