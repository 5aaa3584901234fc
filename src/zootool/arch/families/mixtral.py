"""Mixtral (8x7B, 8x22B): Mistral attention, softmax-routed top-k SwiGLU experts renormalised to one."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import model_validator

from ...config.schema_base import Count
from ..decoder_config import DecoderConfig
from ..layout import FeedForward, Moe
from ..rules import at_most
from ..scaffolds import MOE
from ..weight_names import WeightNames

MIXTRAL_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
           "moe.router": "block_sparse_moe.gate", "moe": "block_sparse_moe"},
    experts={"gate_up_proj": ("w1", "w3"), "down_proj": ("w2",)},
)


class MixtralArch(DecoderConfig):
    """A Mixtral decoder; ``intermediate-size`` is each expert's width, as in ``MixtralConfig``."""

    family_tag: ClassVar[str] = "mixtral"
    model_types: ClassVar[tuple[str, ...]] = ("mixtral",)
    causal_lm: ClassVar[dict[str, str]] = {"mixtral": "MixtralForCausalLM"}
    weight_names: ClassVar[WeightNames] = MIXTRAL_NAMES
    scaffold = MOE
    uniform_window_types: ClassVar[tuple[str, ...]] = ("mixtral",)

    family: Literal["mixtral"]
    model_type: Literal["mixtral"] = "mixtral"
    num_local_experts: Count
    num_experts_per_tok: Count

    @model_validator(mode="after")
    def _routing(self) -> Self:
        at_most("num-experts-per-tok", self.num_experts_per_tok, "num-local-experts", self.num_local_experts)
        return self

    def ffn(self, index: int) -> FeedForward:
        return Moe(
            hidden=self.hidden_size, experts=self.num_local_experts, top_k=self.num_experts_per_tok,
            intermediate=self.intermediate_size, routing="softmax", renormalize=True,
        )

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        return super().hf_values(hf) | {
            "num_local_experts": hf.num_local_experts, "num_experts_per_tok": hf.num_experts_per_tok,
        }

    def to_hf(self) -> dict[str, Any]:
        return super().to_hf() | {
            "num_local_experts": self.num_local_experts, "num_experts_per_tok": self.num_experts_per_tok,
        }
