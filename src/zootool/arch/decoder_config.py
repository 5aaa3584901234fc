"""The typed config that attention decoders share: Llama, Qwen, Mistral, Gemma, Phi, OLMo, SmolLM.

A family subclasses :class:`DecoderConfig`, narrows ``family`` and ``model_type``, adds its
own settings, and overrides the hooks that differ (``attention``, ``ffn``, ``norm_slots``,
``window``...). Field names mirror transformers' configs in kebab case.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..config.schema_base import MAX_LAYERS, Array, Count, FieldError
from .contract import ArchConfig
from .layout import Activation, Attention, DecoderLayout, FeedForward, Layer, Mixer, Mlp, Norm, Rotary
from .rope import RopeScaling, rope_from_hf, rope_to_hf
from .rules import divides, even_head_dim

LayerKind = Literal["full_attention", "sliding_attention"]
HiddenAct = Literal["silu", "gelu_pytorch_tanh"]
ACTIVATIONS: dict[str, Activation] = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh"}
DEFAULT_ROPE = "default"  # the one rotary table of a model without per-layer-type RoPE


class DecoderConfig(ArchConfig):
    """Every number needed to build and count a GQA attention decoder."""

    # Model types whose sliding-window applies to every layer (Mistral); others say per layer-types.
    uniform_window_types: ClassVar[tuple[str, ...]] = ()
    hf_activation_key: ClassVar[str] = "hidden_act"

    hidden_size: Count
    num_hidden_layers: int = Field(ge=1, le=MAX_LAYERS)
    vocab_size: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    head_dim: Count | None = None  # None: hidden-size / num-attention-heads
    intermediate_size: Count
    hidden_act: HiddenAct = "silu"
    tie_embeddings: bool = False
    # Rotary frequencies are theta ** (-2i / d): they fall with i only for theta > 1.
    rope_theta: float = Field(default=10_000.0, gt=1)
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = Field(default=1e-6, gt=0, lt=1)
    attention_bias: bool = False
    mlp_bias: bool = False
    sliding_window: Count | None = None
    layer_types: Array[LayerKind] | None = None  # None: every layer full attention
    max_position_embeddings: Count = 4096

    @model_validator(mode="after")
    def _shape_rules(self) -> Self:
        self.check_heads()
        self._check_layer_types()
        original = self.rope_scaling and self.rope_scaling.original_max_position_embeddings
        if original and original > self.max_position_embeddings:
            raise FieldError(
                "rope-scaling.original-max-position-embeddings",
                f"must not exceed max-position-embeddings ({self.max_position_embeddings}), the scaled length",
            )
        return self

    def check_heads(self) -> None:
        if self.head_dim is None:
            divides("num-attention-heads", self.num_attention_heads, "hidden-size", self.hidden_size)
        even_head_dim("head-dim" if self.head_dim else "num-attention-heads", self.rotary_dims)
        divides("num-key-value-heads", self.num_key_value_heads, "num-attention-heads", self.num_attention_heads)

    def _check_layer_types(self) -> None:
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise FieldError("layer-types", f"has {len(self.layer_types)} entries for {self.num_hidden_layers} layers")
        sliding = self.model_type in self.uniform_window_types or "sliding_attention" in (self.layer_types or ())
        if "sliding_attention" in (self.layer_types or ()) and self.sliding_window is None:
            raise FieldError("sliding-window", "is needed: layer-types has sliding_attention layers")
        if self.sliding_window is not None and not sliding:
            raise FieldError("sliding-window", "is set, but no layer of layer-types is sliding_attention")

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def rotary_dims(self) -> int:
        """Channels of each head that RoPE turns (all of them unless a family says otherwise)."""
        return self.resolved_head_dim

    # --- the layout -------------------------------------------------------------------------
    def layout(self) -> DecoderLayout:
        layers = tuple(Layer(self.mixer(i), self.ffn(i), self.norm_slots) for i in range(self.num_hidden_layers))
        return DecoderLayout(
            vocab=self.vocab_size, hidden=self.hidden_size, layers=layers, norm=self.norm(),
            tied=self.tie_embeddings, embed_scale=self.embed_scale, logit_softcap=self.logit_softcap,
        )

    norm_slots: ClassVar[tuple[str, ...]] = ("mixer_norm", "ffn_norm")
    embed_scale: ClassVar[float | None] = None
    logit_softcap: ClassVar[float | None] = None

    def norm(self) -> Norm:
        return Norm(self.rms_norm_eps)

    def mixer(self, index: int) -> Mixer:
        """Layer ``index``'s token mixer: attention here; hybrids choose per layer."""
        return self.attention(index)

    def attention(self, index: int) -> Attention:
        return Attention(
            hidden=self.hidden_size, heads=self.num_attention_heads, kv_heads=self.num_key_value_heads,
            head_dim=self.resolved_head_dim, rotary=self.rotary(index), qkv_bias=self.attention_bias,
            o_bias=self.attention_bias, qk_norm="none", window=self.window(index),
        )

    def rotary(self, index: int) -> Rotary | None:
        return Rotary(DEFAULT_ROPE, self.rotary_dims)

    def window(self, index: int) -> int | None:
        if self.layer_types is None:
            return self.sliding_window if self.model_type in self.uniform_window_types else None
        return self.sliding_window if self.layer_types[index] == "sliding_attention" else None

    def ffn(self, index: int) -> FeedForward:
        return Mlp(self.hidden_size, self.intermediate_size, ACTIVATIONS[self.hidden_act], self.mlp_bias)

    # --- config.json ------------------------------------------------------------------------
    @classmethod
    def hf_rope_values(cls, hf: Any) -> dict[str, Any]:
        theta, scaling = rope_from_hf(hf.rope_parameters)
        return {"rope_theta": theta, "rope_scaling": scaling}

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        heads = hf.num_attention_heads
        layer_types = tuple(getattr(hf, "layer_types", None) or ())
        sliding = "sliding_attention" in layer_types
        window = getattr(hf, "sliding_window", None)
        return {
            "model_type": hf.model_type,
            "hidden_size": hf.hidden_size,
            "num_hidden_layers": hf.num_hidden_layers,
            "vocab_size": hf.vocab_size,
            "num_attention_heads": heads,
            "num_key_value_heads": getattr(hf, "num_key_value_heads", None) or heads,
            "head_dim": _head_dim(hf),
            "intermediate_size": hf.intermediate_size,
            "hidden_act": getattr(hf, cls.hf_activation_key, "silu"),
            "tie_embeddings": bool(hf.tie_word_embeddings),
            **cls.hf_rope_values(hf),
            "rms_norm_eps": float(hf.rms_norm_eps),
            "attention_bias": bool(getattr(hf, "attention_bias", False)),
            "mlp_bias": bool(getattr(hf, "mlp_bias", False)),
            # A window no layer uses means nothing: transformers ignores it too.
            "sliding_window": window if (sliding or hf.model_type in cls.uniform_window_types) else None,
            "layer_types": layer_types if sliding else None,
            "max_position_embeddings": hf.max_position_embeddings,
        }

    def to_hf(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "model_type": self.model_type,
            "architectures": [self.oracle_class()],
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "vocab_size": self.vocab_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.resolved_head_dim,
            "intermediate_size": self.intermediate_size,
            self.hf_activation_key: self.hidden_act,
            "tie_word_embeddings": self.tie_embeddings,
            "rope_parameters": self.hf_rope(),
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "sliding_window": self.sliding_window,
        }
        if self.layer_types is not None:
            # Qwen's configs drop the window (and the sliding layers) unless this is set.
            config |= {"layer_types": list(self.layer_types), "use_sliding_window": True}
        return config

    def hf_rope(self) -> dict[str, Any]:
        return rope_to_hf(self.rope_theta, self.rope_scaling)

    def settings(self) -> dict[str, Any]:
        """As compared with a checkpoint: an absent head-dim is the one it implies."""
        return super().settings() | {"head_dim": self.resolved_head_dim}


def _head_dim(hf: Any) -> int | None:
    """A config's head dim, None where it is the hidden size split by the heads (recipes leave it out)."""
    head_dim = getattr(hf, "head_dim", None)
    return None if head_dim in (None, hf.hidden_size / hf.num_attention_heads) else head_dim
