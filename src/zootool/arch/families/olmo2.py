"""OLMo 2: norms after the attention and the MLP instead of before, q/k RMSNorm over the whole projection."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal

from ..decoder_config import DecoderConfig
from ..layout import Attention, Norm
from ..scaffolds import DENSE
from ..weight_names import WeightNames

OLMO2_NAMES = WeightNames(
    layer={"mixer_post_norm": "post_attention_layernorm", "ffn_post_norm": "post_feedforward_layernorm"},
)


class Olmo2Arch(DecoderConfig):
    """A dense OLMo 2 decoder."""

    family_tag: ClassVar[str] = "olmo2"
    model_types: ClassVar[tuple[str, ...]] = ("olmo2",)
    causal_lm: ClassVar[dict[str, str]] = {"olmo2": "Olmo2ForCausalLM"}
    weight_names: ClassVar[WeightNames] = OLMO2_NAMES
    scaffold = DENSE
    norm_slots: ClassVar[tuple[str, ...]] = ("mixer_post_norm", "ffn_post_norm")

    family: Literal["olmo2"]
    model_type: Literal["olmo2"] = "olmo2"

    def attention(self, index: int) -> Attention:
        return replace(super().attention(index), qk_norm="whole", norm=Norm(self.rms_norm_eps))

    def to_hf(self) -> dict[str, Any]:
        return super().to_hf() | {"attention_bias": self.attention_bias}
