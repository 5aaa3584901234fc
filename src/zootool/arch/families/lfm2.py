"""LFM2 / LFM2.5 dense: short-conv + GQA attention hybrid (LFM2-350M, LFM2-1.2B, LFM2.5-1.2B).

Each layer mixes with either a gated depthwise causal conv or GQA attention (per-head q/k
RMSNorm), then a SwiGLU MLP. Field names mirror transformers' ``Lfm2Config`` in kebab case;
``intermediate-size`` is the MLP width the layers really have (transformers derives it
from ``block_*`` settings, which ``config.json`` may carry instead).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Array, Count
from ..contract import ArchConfig
from ..layout import Attention, DecoderLayout, FeedForward, Layer, Mixer, Mlp, Norm, Rotary, ShortConv
from ..rope import RopeScaling, rope_from_hf, rope_to_hf
from ..rules import divides, even_head_dim
from ..scaffolds import DENSE_CORE_AI
from ..weight_names import WeightNames

LayerType = Literal["conv", "full_attention"]
LFM2_NAMES = WeightNames(
    layer={
        "mixer_norm": "operator_norm", "ffn_norm": "ffn_norm",
        "self_attn.o_proj": "self_attn.out_proj",
        "self_attn.q_norm": "self_attn.q_layernorm", "self_attn.k_norm": "self_attn.k_layernorm",
        "mlp.gate_proj": "feed_forward.w1", "mlp.up_proj": "feed_forward.w3", "mlp.down_proj": "feed_forward.w2",
        "moe.router": "feed_forward.gate", "moe.expert_bias": "feed_forward.expert_bias",
        "moe.experts": "feed_forward.experts",
    },
    top={"norm": "embedding_norm"},
    experts={"gate_up_proj": ("w1", "w3"), "down_proj": ("w2",)},
)


class Lfm2Arch(ArchConfig):
    """Every number of a dense LFM2 hybrid."""

    family_tag: ClassVar[str] = "lfm2"
    model_types: ClassVar[tuple[str, ...]] = ("lfm2",)
    causal_lm: ClassVar[dict[str, str]] = {"lfm2": "Lfm2ForCausalLM"}
    weight_names: ClassVar[WeightNames] = LFM2_NAMES
    scaffold = DENSE_CORE_AI

    family: Literal["lfm2"]
    model_type: Literal["lfm2"] = "lfm2"
    hidden_size: Count
    # The layer count is the length of this list (transformers checks the two agree).
    layer_types: Annotated[Array[LayerType], Field(min_length=1, max_length=MAX_LAYERS)]
    vocab_size: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    intermediate_size: Count
    conv_kernel: Count = 3
    conv_bias: bool = False
    tie_embeddings: bool = True
    # Rotary frequencies are theta ** (-2i / d): they fall with i only for theta > 1.
    rope_theta: float = Field(default=1_000_000.0, gt=1)
    rope_scaling: RopeScaling | None = None
    norm_eps: float = Field(default=1e-5, gt=0, lt=1)
    max_position_embeddings: Count = 128_000

    @model_validator(mode="after")
    def _heads(self) -> Self:
        # transformers takes head_dim = hidden_size // num_attention_heads for this family.
        divides("num-attention-heads", self.num_attention_heads, "hidden-size", self.hidden_size)
        even_head_dim("num-attention-heads", self.head_dim)
        divides("num-key-value-heads", self.num_key_value_heads, "num-attention-heads", self.num_attention_heads)
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    def layout(self) -> DecoderLayout:
        layers = tuple(Layer(self.mixer(i), self.ffn(i)) for i in range(self.num_layers))
        return DecoderLayout(self.vocab_size, self.hidden_size, layers, Norm(self.norm_eps), self.tie_embeddings)

    def mixer(self, index: int) -> Mixer:
        if self.layer_types[index] == "conv":
            return ShortConv(self.hidden_size, self.conv_kernel, self.conv_bias)
        return Attention(
            hidden=self.hidden_size, heads=self.num_attention_heads, kv_heads=self.num_key_value_heads,
            head_dim=self.head_dim, rotary=Rotary("default", self.head_dim), qk_norm="head",
            norm=Norm(self.norm_eps),
        )

    def ffn(self, index: int) -> FeedForward:
        return Mlp(self.hidden_size, self.intermediate_size)

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        theta, scaling = rope_from_hf(hf.rope_parameters)
        layer_types = tuple("full_attention" if kind == "attention" else kind for kind in hf.layer_types)
        if len(layer_types) != hf.num_hidden_layers:
            raise ValueError(f"num_hidden_layers ({hf.num_hidden_layers}) differs from the "
                             f"{len(layer_types)} entries of layer_types")
        return {
            "hidden_size": hf.hidden_size, "layer_types": layer_types, "vocab_size": hf.vocab_size,
            "num_attention_heads": hf.num_attention_heads, "num_key_value_heads": hf.num_key_value_heads,
            "intermediate_size": cls.mlp_width(hf), "conv_kernel": hf.conv_L_cache, "conv_bias": bool(hf.conv_bias),
            "tie_embeddings": bool(hf.tie_word_embeddings), "rope_theta": theta, "rope_scaling": scaling,
            "norm_eps": float(hf.norm_eps), "max_position_embeddings": hf.max_position_embeddings,
        }

    @staticmethod
    def mlp_width(hf: Any) -> int:
        """The MLP width ``Lfm2MLP`` builds from ``intermediate_size`` and the ``block_*`` settings."""
        width = hf.intermediate_size
        if not getattr(hf, "block_auto_adjust_ff_dim", False):
            return width
        width = int(2 * width / 3)
        multiplier = getattr(hf, "block_ffn_dim_multiplier", None)
        if multiplier is None:
            return width
        width, multiple = int(multiplier * width), hf.block_multiple_of
        return multiple * ((width + multiple - 1) // multiple)

    def to_hf(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "architectures": [self.oracle_class()],
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "layer_types": list(self.layer_types),
            "vocab_size": self.vocab_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "intermediate_size": self.intermediate_size,
            "block_auto_adjust_ff_dim": False,
            "conv_L_cache": self.conv_kernel,
            "conv_bias": self.conv_bias,
            "tie_word_embeddings": self.tie_embeddings,
            "rope_parameters": rope_to_hf(self.rope_theta, self.rope_scaling),
            "norm_eps": self.norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
        }
