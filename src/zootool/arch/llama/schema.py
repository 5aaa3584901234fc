"""Dense decoders of the Llama family (Llama, Qwen3, Mistral): architecture numbers.

One family, ``llama``, covers the transformers model types that share the layout
RMSNorm -> GQA attention with RoPE -> RMSNorm -> SwiGLU MLP; ``model-type`` says
which upstream config class the numbers come from and decides the per-type details
(Qwen3's per-head q/k RMSNorm, Llama's optional MLP bias, Mistral's sliding window).
Field names mirror transformers' configs in kebab case.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Count, FieldError, Strict
from ...errors import ConfigError, NotImplementedFeatureError
from ..base import TensorSpec
from ..rules import divides, even_head_dim

ModelType = Literal["llama", "qwen3", "mistral"]
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM"}
# Where each model type's transformers config class has a knob at all.
_HAS_ATTENTION_BIAS = ("llama", "qwen3")
_HAS_MLP_BIAS = ("llama",)


class RopeScaling(Strict):
    """RoPE frequency scaling (``rope_parameters`` of transformers 5, ``rope_scaling`` before)."""

    rope_type: Literal["llama3", "linear"]
    # transformers' RoPE validation: a scaling factor stretches positions, never shrinks them.
    factor: float = Field(ge=1)
    low_freq_factor: float | None = Field(default=None, gt=0)
    high_freq_factor: float | None = Field(default=None, gt=0)
    original_max_position_embeddings: Count | None = None

    @model_validator(mode="after")
    def _complete(self) -> "RopeScaling":
        llama3 = (self.low_freq_factor, self.high_freq_factor, self.original_max_position_embeddings)
        if self.rope_type == "llama3" and None in llama3:
            raise ValueError(
                "llama3 rope scaling needs low-freq-factor, high-freq-factor and original-max-position-embeddings"
            )
        low, high = self.low_freq_factor, self.high_freq_factor
        if low is not None and high is not None and high <= low:
            raise FieldError("high-freq-factor", f"must be greater than low-freq-factor ({low})")
        return self


class LlamaArch(Strict):
    """Every number needed to count a dense Llama-family decoder's parameters offline."""

    family_tag: ClassVar[str] = "llama"
    hf_model_type: ClassVar[str] = "llama"
    hf_model_types: ClassVar[tuple[str, ...]] = ("llama", "qwen3", "mistral")
    # What `zoo new` writes, and what the committed dense recipes hold to (tests/test_plan.py):
    # no expert kernel; Core AI targets for OS 27, Core ML ones before it (the platform picks
    # the backend); every target int8-all, whose int8 embedding and head may flip one gate
    # position (recipes/tiny-llama.toml), so the gate allows one introduced flip.
    scaffold_defaults: ClassVar[dict[str, Any]] = {
        "kernel": "none", "gate": {"margin": 0.1, "max-introduced-flips": 1},
    }
    scaffold_targets: ClassVar[dict[str, Any]] = {
        target: {"platform": target, "quant": "int8-all"}
        for target in ("mac", "iphone", "mac-macos15", "iphone-ios18")
    }

    family: Literal["llama"]
    model_type: ModelType
    hidden_size: Count
    num_hidden_layers: int = Field(ge=1, le=MAX_LAYERS)
    vocab_size: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    intermediate_size: Count
    head_dim: Count | None = None
    tie_embeddings: bool = False
    # Rotary frequencies are theta ** (-2i / d): they fall with i only for theta > 1.
    rope_theta: float = Field(default=10_000.0, gt=1)
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = Field(default=1e-6, gt=0, lt=1)
    attention_bias: bool = False
    mlp_bias: bool = False
    sliding_window: Count | None = None
    max_position_embeddings: Count = 4096

    @model_validator(mode="after")
    def _consistent(self) -> "LlamaArch":
        self._check_heads()
        original = self.rope_scaling and self.rope_scaling.original_max_position_embeddings
        if original and original >= self.max_position_embeddings:
            raise FieldError(
                "rope-scaling.original-max-position-embeddings",
                f"must be below max-position-embeddings ({self.max_position_embeddings}), the scaled length",
            )
        if self.attention_bias and self.model_type not in _HAS_ATTENTION_BIAS:
            raise ValueError(f"model-type {self.model_type} has no attention-bias option")
        if self.mlp_bias and self.model_type not in _HAS_MLP_BIAS:
            raise ValueError(f"model-type {self.model_type} has no mlp-bias option")
        if self.sliding_window is not None and self.model_type != "mistral":
            raise ValueError("sliding-window is supported for model-type mistral only")
        return self

    def _check_heads(self) -> None:
        # LlamaConfig requires the split even with an explicit head_dim; Qwen3 and Mistral
        # only derive head_dim from it when none is given (Qwen3-0.6B: 1024 = 16 x 64, heads of 128).
        if self.model_type == "llama" or self.head_dim is None:
            divides("num-attention-heads", self.num_attention_heads, "hidden-size", self.hidden_size)
        even_head_dim("head-dim" if self.head_dim else "num-attention-heads", self.resolved_head_dim)
        divides("num-key-value-heads", self.num_key_value_heads, "num-attention-heads", self.num_attention_heads)

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def qk_norm(self) -> bool:
        """Qwen3 normalises every query and key head before RoPE."""
        return self.model_type == "qwen3"

    def tensors(self) -> list[TensorSpec]:
        """Every stored tensor, named as in the transformers checkpoint."""
        h = self.hidden_size
        specs = [TensorSpec("model.embed_tokens.weight", "embedding", (self.vocab_size, h))]
        for index in range(self.num_hidden_layers):
            prefix = f"model.layers.{index}"
            specs += self._attention(f"{prefix}.self_attn")
            specs += self._mlp(f"{prefix}.mlp")
            specs += [
                TensorSpec(f"{prefix}.input_layernorm.weight", "norm", (h,)),
                TensorSpec(f"{prefix}.post_attention_layernorm.weight", "norm", (h,)),
            ]
        specs.append(TensorSpec("model.norm.weight", "norm", (h,)))
        if not self.tie_embeddings:
            specs.append(TensorSpec("lm_head.weight", "lm-head", (self.vocab_size, h)))
        return specs

    def checkpoint_tensors(self) -> list[TensorSpec]:
        """The tensors as a Hub checkpoint stores them (the same names as :meth:`tensors`)."""
        return self.tensors()

    def _attention(self, prefix: str) -> list[TensorSpec]:
        h, d = self.hidden_size, self.resolved_head_dim
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        shapes = {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", "attention", shape) for name, shape in shapes.items()]
        if self.attention_bias:
            specs += [TensorSpec(f"{prefix}.{name}.bias", "attention", shape[:1]) for name, shape in shapes.items()]
        if self.qk_norm:
            specs += [TensorSpec(f"{prefix}.{name}.weight", "norm", (d,)) for name in ("q_norm", "k_norm")]
        return specs

    def _mlp(self, prefix: str) -> list[TensorSpec]:
        h, i = self.hidden_size, self.intermediate_size
        shapes = {"gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}
        specs = [TensorSpec(f"{prefix}.{name}.weight", "linear", shape) for name, shape in shapes.items()]
        if self.mlp_bias:
            specs += [TensorSpec(f"{prefix}.{name}.bias", "linear", shape[:1]) for name, shape in shapes.items()]
        return specs

    def to_hf_config(self) -> dict[str, Any]:
        """The transformers ``config.json`` contents for these numbers."""
        rope: dict[str, Any] = {"rope_type": "default", "rope_theta": self.rope_theta}
        if self.rope_scaling is not None:
            rope = {**self.rope_scaling.model_dump(exclude_none=True), "rope_theta": self.rope_theta}
        config: dict[str, Any] = {
            "model_type": self.model_type,
            "architectures": [ARCHITECTURES[self.model_type]],
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "vocab_size": self.vocab_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "intermediate_size": self.intermediate_size,
            "head_dim": self.resolved_head_dim,
            "tie_word_embeddings": self.tie_embeddings,
            "rope_parameters": rope,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
        }
        if self.model_type in _HAS_ATTENTION_BIAS:
            config["attention_bias"] = self.attention_bias
        if self.model_type in _HAS_MLP_BIAS:
            config["mlp_bias"] = self.mlp_bias
        if self.model_type == "mistral":
            config["sliding_window"] = self.sliding_window
        return config

    @classmethod
    def hf_config_to_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Recipe ``[architecture]`` keys (kebab case) from an upstream ``config.json``."""
        model_type = config["model_type"]
        if model_type not in cls.hf_model_types:
            raise ConfigError(
                f"model_type {model_type!r} is not a llama-family type", f"use one of {cls.hf_model_types}"
            )
        _refuse_qwen3_sliding(config)
        heads = config["num_attention_heads"]
        fields: dict[str, Any] = {
            "family": "llama",
            "model-type": model_type,
            "hidden-size": config["hidden_size"],
            "num-hidden-layers": config["num_hidden_layers"],
            "vocab-size": config["vocab_size"],
            "num-attention-heads": heads,
            "num-key-value-heads": config.get("num_key_value_heads") or heads,
            "intermediate-size": config["intermediate_size"],
        }
        if config.get("head_dim") and config["head_dim"] != config["hidden_size"] // heads:
            fields["head-dim"] = config["head_dim"]
        fields["tie-embeddings"] = bool(config.get("tie_word_embeddings", False))
        theta, scaling = rope_settings(config)
        fields["rope-theta"] = theta
        if scaling:
            fields["rope-scaling"] = {key.replace("_", "-"): value for key, value in scaling.items()}
        fields["rms-norm-eps"] = float(config.get("rms_norm_eps", 1e-6))
        # A knob the model type's config class lacks is ignored, as transformers ignores it.
        if config.get("attention_bias") and model_type in _HAS_ATTENTION_BIAS:
            fields["attention-bias"] = True
        if config.get("mlp_bias") and model_type in _HAS_MLP_BIAS:
            fields["mlp-bias"] = True
        if model_type == "mistral" and config.get("sliding_window"):
            fields["sliding-window"] = config["sliding_window"]
        fields["max-position-embeddings"] = config.get("max_position_embeddings", 4096)
        return fields


def rope_settings(config: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """``(rope_theta, scaling or None)`` from a transformers 4 or 5 ``config.json``."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = float(rope.get("rope_theta", config.get("rope_theta", 10_000.0)))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type not in ("llama3", "linear"):
        raise NotImplementedFeatureError(
            f"RoPE type {rope_type!r} is not supported by the llama family yet",
            "supported RoPE types: default, linear, llama3",
        )
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return theta, {"rope_type": rope_type, **{k: rope[k] for k in keys if rope.get(k) is not None}}


def _refuse_qwen3_sliding(config: dict[str, Any]) -> None:
    sliding = config.get("use_sliding_window") or "sliding_attention" in (config.get("layer_types") or ())
    if config["model_type"] == "qwen3" and sliding:
        raise NotImplementedFeatureError(
            "Qwen3 with sliding-window layers is not supported by the llama family yet",
            "only full-attention Qwen3 checkpoints (use_sliding_window = false) are supported",
        )
