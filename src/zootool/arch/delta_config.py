"""Settings of the gated delta-net hybrids (Qwen3-Next, Qwen3.5): which layers mix by the delta rule.

``layer-types`` says per layer whether it mixes by the gated delta rule (``linear_attention``:
a causal conv window and a recurrent state, the ``convStates`` / ``recurrentStates`` states)
or by GQA attention whose ``q_proj`` also yields a sigmoid output gate, q/k-normed per head,
rotating ``partial-rotary-factor`` of each head. Every RMS norm but the delta net's own scales
by ``1 + w``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..config.schema_base import MAX_LAYERS, Array, Count, FieldError
from .decoder_config import DecoderConfig
from .layout import Attention, GatedDeltaNet, Mixer, Norm
from .rules import divides

HybridKind = Literal["linear_attention", "full_attention"]
QWEN_NORM_OFFSET = 1.0  # Qwen3NextRMSNorm / Qwen3_5RMSNorm scale by (1 + w), w stored zero-centred
DELTA_KEYS = ("linear_conv_kernel_dim", "linear_key_head_dim", "linear_value_head_dim", "linear_num_key_heads",
              "linear_num_value_heads")


class GatedDeltaHybrid(DecoderConfig):
    """A :class:`DecoderConfig` whose ``linear_attention`` layers are gated delta nets."""

    # Qwen3-Next's checkpoint interleaves q/k/v/z (and b/a) per key head in two projections.
    fused_delta: ClassVar[bool] = False

    layer_types: Annotated[Array[HybridKind], Field(min_length=1, max_length=MAX_LAYERS)]  # type: ignore[assignment]
    partial_rotary_factor: float = Field(default=0.25, gt=0, le=1)
    linear_conv_kernel_dim: int = Field(default=4, ge=2, le=64)
    linear_key_head_dim: Count = 128
    linear_value_head_dim: Count = 128
    linear_num_key_heads: Count = 16
    linear_num_value_heads: Count = 32

    @model_validator(mode="after")
    def _hybrid(self) -> Self:
        divides("linear-num-key-heads", self.linear_num_key_heads, "linear-num-value-heads",
                self.linear_num_value_heads)
        if "full_attention" not in self.layer_types:
            raise FieldError("layer-types", "needs a full_attention layer: the engines' KV caches are its states")
        return self

    @property
    def rotary_dims(self) -> int:
        return int(self.resolved_head_dim * self.partial_rotary_factor)

    def norm(self) -> Norm:
        return Norm(self.rms_norm_eps, QWEN_NORM_OFFSET)

    def window(self, index: int) -> int | None:
        return None

    def mixer(self, index: int) -> Mixer:
        if self.layer_types[index] == "full_attention":
            return self.attention(index)
        return GatedDeltaNet(
            hidden=self.hidden_size, key_heads=self.linear_num_key_heads, value_heads=self.linear_num_value_heads,
            key_dim=self.linear_key_head_dim, value_dim=self.linear_value_head_dim,
            kernel=self.linear_conv_kernel_dim, norm=Norm(self.rms_norm_eps), fused=self.fused_delta,
        )

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qkv_bias=self.attention_bias, o_bias=self.attention_bias,
                       qk_norm="head", norm=self.norm(), output_gate=True)

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        values = super().hf_values(hf) | {key: getattr(hf, key) for key in DELTA_KEYS}
        return values | {
            "layer_types": tuple(hf.layer_types),
            "partial_rotary_factor": float(hf.rope_parameters.get("partial_rotary_factor", 1.0)),
        }

    def hf_rope(self) -> dict[str, Any]:
        return super().hf_rope() | {"partial_rotary_factor": self.partial_rotary_factor}

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf() | {key: getattr(self, key) for key in DELTA_KEYS}
        config.pop("use_sliding_window", None)
        config.pop("sliding_window", None)
        return config | {"layer_types": list(self.layer_types), "attention_bias": self.attention_bias}
