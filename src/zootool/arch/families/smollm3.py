"""SmolLM3: Llama's layout where every few layers attend without positions (NoPE)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import model_validator

from ...config.schema_base import Array, FieldError
from ..decoder_config import DecoderConfig
from ..layout import Rotary
from ..scaffolds import DENSE
from ..weight_names import WeightNames
from .llama import LLAMA_NAMES


class SmolLM3Arch(DecoderConfig):
    """A SmolLM3 decoder; ``no-rope-layers[i]`` is 1 where layer ``i`` uses RoPE, 0 where it has none."""

    family_tag: ClassVar[str] = "smollm3"
    model_types: ClassVar[tuple[str, ...]] = ("smollm3",)
    causal_lm: ClassVar[dict[str, str]] = {"smollm3": "SmolLM3ForCausalLM"}
    weight_names: ClassVar[WeightNames] = LLAMA_NAMES
    scaffold = DENSE

    family: Literal["smollm3"]
    model_type: Literal["smollm3"] = "smollm3"
    no_rope_layers: Array[Literal[0, 1]]

    @model_validator(mode="after")
    def _one_flag_per_layer(self) -> Self:
        if len(self.no_rope_layers) != self.num_hidden_layers:
            raise FieldError("no-rope-layers",
                             f"has {len(self.no_rope_layers)} entries for {self.num_hidden_layers} layers")
        return self

    def rotary(self, index: int) -> Rotary | None:
        return super().rotary(index) if self.no_rope_layers[index] else None

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        return super().hf_values(hf) | {"no_rope_layers": tuple(int(flag) for flag in hf.no_rope_layers)}

    def to_hf(self) -> dict[str, Any]:
        return super().to_hf() | {
            "no_rope_layers": list(self.no_rope_layers), "attention_bias": self.attention_bias,
            "mlp_bias": self.mlp_bias,
        }
