"""Qwen2 / Qwen2.5 dense decoders: Llama's layout with biases on the q, k and v projections."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from ..decoder_config import DecoderConfig
from ..layout import Attention
from ..scaffolds import DENSE
from ..weight_names import WeightNames
from .llama import LLAMA_NAMES


class Qwen2Arch(DecoderConfig):
    """A dense Qwen2 decoder (its q/k/v biases are part of the architecture, not a setting)."""

    family_tag: ClassVar[str] = "qwen2"
    model_types: ClassVar[tuple[str, ...]] = ("qwen2",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen2": "Qwen2ForCausalLM"}
    weight_names: ClassVar[WeightNames] = LLAMA_NAMES
    scaffold = DENSE

    family: Literal["qwen2"]
    model_type: Literal["qwen2"] = "qwen2"

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qkv_bias=True, o_bias=False)
