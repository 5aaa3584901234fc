"""Gemma 3 text-only decoders (Gemma 3 270M, 1B; model_type gemma3_text).

Gemma's own details, on the shared blocks: four norms per layer (before and after both the
attention and the MLP) that scale by ``1 + w``; per-head q/k norms; GeGLU; the embedding
multiplied by ``sqrt(hidden)``; sliding-window layers beside global ones, each kind with
its own RoPE (the global one may be scaled); scores scaled by ``query_pre_attn_scalar``.
The 4B and larger checkpoints are multimodal (model_type gemma3, a text_config beside a
vision tower): not read here.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ...config.schema_base import Count
from ..decoder_config import DecoderConfig
from ..layout import Attention, DecoderLayout, Norm, Rotary
from ..rope import rope_from_hf, rope_to_hf
from ..scaffolds import DENSE
from ..weight_names import WeightNames

GEMMA_NAMES = WeightNames(layer={
    "mixer_norm": "input_layernorm", "mixer_post_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm", "ffn_post_norm": "post_feedforward_layernorm",
})
GEMMA_NORM_OFFSET = 1.0


class Gemma3TextArch(DecoderConfig):
    """A Gemma 3 text decoder."""

    family_tag: ClassVar[str] = "gemma3_text"
    model_types: ClassVar[tuple[str, ...]] = ("gemma3_text",)
    causal_lm: ClassVar[dict[str, str]] = {"gemma3_text": "Gemma3ForCausalLM"}
    weight_names: ClassVar[WeightNames] = GEMMA_NAMES
    scaffold = DENSE
    hf_activation_key: ClassVar[str] = "hidden_activation"
    norm_slots: ClassVar[tuple[str, ...]] = ("mixer_norm", "mixer_post_norm", "ffn_norm", "ffn_post_norm")

    family: Literal["gemma3_text"]
    model_type: Literal["gemma3_text"] = "gemma3_text"
    hidden_act: Literal["gelu_pytorch_tanh"] = "gelu_pytorch_tanh"  # type: ignore[assignment]
    tie_embeddings: bool = True
    # The sliding layers' RoPE base; rope-theta and rope-scaling are the global layers'.
    rope_local_base_freq: float = Field(default=10_000.0, gt=1)
    query_pre_attn_scalar: Count
    final_logit_softcapping: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _layer_kinds(self) -> Self:
        if self.layer_types is None:
            raise ValueError("gemma3_text needs layer-types (sliding_attention and full_attention layers)")
        return self

    def layout(self) -> DecoderLayout:
        return replace(super().layout(), embed_scale=math.sqrt(self.hidden_size),
                       logit_softcap=self.final_logit_softcapping)

    def norm(self) -> Norm:
        return Norm(self.rms_norm_eps, GEMMA_NORM_OFFSET)

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qk_norm="head", norm=self.norm(),
                       scale=self.query_pre_attn_scalar**-0.5)

    def rotary(self, index: int) -> Rotary | None:
        return Rotary(self.layer_types[index], self.rotary_dims)

    @classmethod
    def hf_rope_values(cls, hf: Any) -> dict[str, Any]:
        theta, scaling = rope_from_hf(hf.rope_parameters["full_attention"], "rope_parameters.full_attention")
        local, local_scaling = rope_from_hf(hf.rope_parameters["sliding_attention"], "rope_parameters.sliding_attention")
        if local_scaling is not None:
            raise ValueError("rope_parameters.sliding_attention: scaled RoPE on sliding layers is not supported")
        return {"rope_theta": theta, "rope_scaling": scaling, "rope_local_base_freq": local}

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        if getattr(hf, "attn_logit_softcapping", None) or getattr(hf, "use_bidirectional_attention", False):
            raise ValueError("attn_logit_softcapping / use_bidirectional_attention are not supported")
        return super().hf_values(hf) | {
            "query_pre_attn_scalar": hf.query_pre_attn_scalar,
            "final_logit_softcapping": hf.final_logit_softcapping,
        }

    def hf_rope(self) -> dict[str, Any]:
        return {
            "full_attention": rope_to_hf(self.rope_theta, self.rope_scaling),
            "sliding_attention": rope_to_hf(self.rope_local_base_freq, None),
        }

    def to_hf(self) -> dict[str, Any]:
        return super().to_hf() | {
            "attention_bias": self.attention_bias, "query_pre_attn_scalar": self.query_pre_attn_scalar,
            "final_logit_softcapping": self.final_logit_softcapping, "attn_logit_softcapping": None,
        }
