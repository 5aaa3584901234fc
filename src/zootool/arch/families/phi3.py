"""Phi-3 / Phi-3.5 / Phi-4-mini: fused q/k/v and gate/up projections, partial rotary, LongRoPE."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ...config.schema_base import Count
from ..decoder_config import DecoderConfig
from ..scaffolds import DENSE
from ..weight_names import WeightNames

PHI3_NAMES = WeightNames(
    layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"},
    fused={
        "self_attn.qkv_proj.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
        "mlp.gate_up_proj.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
    },
)


class Phi3Arch(DecoderConfig):
    """A Phi-3-architecture decoder; ``partial-rotary-factor`` of each head's channels are rotated."""

    family_tag: ClassVar[str] = "phi3"
    model_types: ClassVar[tuple[str, ...]] = ("phi3",)
    causal_lm: ClassVar[dict[str, str]] = {"phi3": "Phi3ForCausalLM"}
    weight_names: ClassVar[WeightNames] = PHI3_NAMES
    scaffold = DENSE
    uniform_window_types: ClassVar[tuple[str, ...]] = ("phi3",)

    family: Literal["phi3"]
    model_type: Literal["phi3"] = "phi3"
    partial_rotary_factor: float = Field(default=1.0, gt=0, le=1)
    original_max_position_embeddings: Count = 4096

    @property
    def rotary_dims(self) -> int:
        return int(self.resolved_head_dim * self.partial_rotary_factor)

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        return super().hf_values(hf) | {
            "partial_rotary_factor": float(hf.rope_parameters.get("partial_rotary_factor", 1.0)),
            "original_max_position_embeddings": hf.original_max_position_embeddings,
        }

    def hf_rope(self) -> dict[str, Any]:
        return super().hf_rope() | {"partial_rotary_factor": self.partial_rotary_factor}

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {"original_max_position_embeddings": self.original_max_position_embeddings}
        config.pop("head_dim")  # Phi3Config has none: heads split the hidden size
        return config
