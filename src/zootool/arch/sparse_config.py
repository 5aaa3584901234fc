"""Settings of decoders whose feed-forwards are routed experts on a sparse step (Qwen-MoE style).

A layer is sparse unless it is in ``mlp-only-layers`` or off the ``decoder-sparse-step``;
sparse layers route each token to ``num-experts-per-tok`` of ``num-experts`` SwiGLU experts of
width ``moe-intermediate-size`` by a softmax, renormalised when ``norm-topk-prob``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from ..config.schema_base import MAX_LAYERS, Array, Count
from .decoder_config import DecoderConfig
from .layout import FeedForward, Moe
from .rules import at_most

SPARSE_KEYS = ("moe_intermediate_size", "num_experts", "num_experts_per_tok", "norm_topk_prob", "decoder_sparse_step")


class SparseStepConfig(DecoderConfig):
    """A :class:`DecoderConfig` with routed experts on its sparse layers."""

    hf_sparse_keys: ClassVar[tuple[str, ...]] = SPARSE_KEYS

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

    def is_sparse(self, index: int) -> bool:
        return index not in self.mlp_only_layers and (index + 1) % self.decoder_sparse_step == 0

    def ffn(self, index: int) -> FeedForward:
        return self.routed() if self.is_sparse(index) else super().ffn(index)

    def routed(self) -> Moe:
        return Moe(
            hidden=self.hidden_size, experts=self.num_experts, top_k=self.num_experts_per_tok,
            intermediate=self.moe_intermediate_size, routing="softmax", renormalize=self.norm_topk_prob,
        )

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        values = super().hf_values(hf) | {key: getattr(hf, key) for key in cls.hf_sparse_keys}
        return values | {"mlp_only_layers": tuple(hf.mlp_only_layers or ())}

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {key: getattr(self, key) for key in self.hf_sparse_keys}
        return config | {"mlp_only_layers": list(self.mlp_only_layers)}
