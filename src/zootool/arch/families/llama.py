"""Llama-style dense decoders: Llama, Qwen3, Mistral.

RMSNorm -> GQA attention with RoPE -> RMSNorm -> SwiGLU MLP. ``model-type`` says which
upstream config class the numbers come from and decides the per-type details: Qwen3's
per-head q/k RMSNorm, Llama's optional MLP bias, Mistral's sliding window on every layer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal, Self

from pydantic import model_validator

from ..decoder_config import DecoderConfig
from ..layout import Attention, Norm
from ..rules import divides
from ..scaffolds import DENSE
from ..weight_names import WeightNames

LLAMA_NAMES = WeightNames(layer={"mixer_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"})
_HAS_ATTENTION_BIAS = ("llama", "qwen3")


class LlamaArch(DecoderConfig):
    """A dense Llama, Qwen3 or Mistral decoder."""

    family_tag: ClassVar[str] = "llama"
    model_types: ClassVar[tuple[str, ...]] = ("llama", "qwen3", "mistral")
    causal_lm: ClassVar[dict[str, str]] = {
        "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM",
    }
    weight_names: ClassVar[WeightNames] = LLAMA_NAMES
    scaffold = DENSE
    uniform_window_types: ClassVar[tuple[str, ...]] = ("mistral",)

    family: Literal["llama"]
    model_type: Literal["llama", "qwen3", "mistral"]

    @model_validator(mode="after")
    def _knobs_of_the_type(self) -> Self:
        if self.attention_bias and self.model_type not in _HAS_ATTENTION_BIAS:
            raise ValueError(f"model-type {self.model_type} has no attention-bias option")
        if self.mlp_bias and self.model_type != "llama":
            raise ValueError(f"model-type {self.model_type} has no mlp-bias option")
        if self.model_type == "llama":
            # LlamaConfig requires the split even with an explicit head_dim.
            divides("num-attention-heads", self.num_attention_heads, "hidden-size", self.hidden_size)
        return self

    def attention(self, index: int) -> Attention:
        attention = super().attention(index)
        if self.model_type != "qwen3":
            return attention
        return replace(attention, qk_norm="head", norm=Norm(self.rms_norm_eps))

    def to_hf(self) -> dict[str, Any]:
        config = super().to_hf()
        if self.model_type in _HAS_ATTENTION_BIAS:
            config["attention_bias"] = self.attention_bias
        if self.model_type == "llama":
            config["mlp_bias"] = self.mlp_bias
        return config
