"""LFM2-MoE (conv + GQA attention hybrid with sparse MoE FFNs): architecture numbers.

Field names mirror transformers' ``Lfm2MoeConfig`` in kebab case, so a recipe can be
scaffolded from, and checked against, an upstream ``config.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ...config.schema_base import MAX_LAYERS, Array, Count, Strict
from ..base import TensorSpec
from ..rules import at_most, divides, even_head_dim

LayerType = Literal["conv", "full_attention"]
# How the Hub (and transformers' ``save_pretrained``) store a stacked expert tensor: one
# matrix per expert and part; ``gate_up_proj`` is w1 (gate) over w3 (up) along the rows.
HUB_EXPERT_PARTS = {"gate_up_proj": ("w1", "w3"), "down_proj": ("w2",)}


class Lfm2MoeArch(Strict):
    """Every number needed to count LFM2-MoE parameters offline."""

    family_tag: ClassVar[str] = "lfm2_moe"
    hf_model_type: ClassVar[str] = "lfm2_moe"

    family: Literal["lfm2_moe"]
    hidden_size: Count
    # The layer count is the length of this list (transformers checks the two agree).
    layer_types: Annotated[Array[LayerType], Field(min_length=1, max_length=MAX_LAYERS)]
    vocab_size: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    intermediate_size: Count
    moe_intermediate_size: Count
    num_experts: Count
    num_experts_per_tok: Count
    num_dense_layers: int = Field(ge=0, le=MAX_LAYERS)
    conv_kernel: Count = 3
    conv_bias: bool = False
    tie_embeddings: bool = True
    # Rotary frequencies are theta ** (-2i / d): they fall with i only for theta > 1.
    rope_theta: float = Field(default=1_000_000.0, gt=1)
    norm_eps: float = Field(default=1e-5, gt=0, lt=1)
    norm_topk_prob: bool = True
    use_expert_bias: bool = True
    routed_scaling_factor: float = Field(default=1.0, gt=0)
    max_position_embeddings: Count = 128_000

    @model_validator(mode="after")
    def _consistent(self) -> "Lfm2MoeArch":
        # transformers takes head_dim = hidden_size // num_attention_heads for this family.
        divides("num-attention-heads", self.num_attention_heads, "hidden-size", self.hidden_size)
        even_head_dim("num-attention-heads", self.head_dim)
        divides("num-key-value-heads", self.num_key_value_heads, "num-attention-heads", self.num_attention_heads)
        at_most("num-experts-per-tok", self.num_experts_per_tok, "num-experts", self.num_experts)
        at_most("num-dense-layers", self.num_dense_layers, "the number of layer-types", self.num_layers)
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    def tensors(self) -> list[TensorSpec]:
        """Every stored tensor, named as in the transformers checkpoint."""
        specs = [TensorSpec("model.embed_tokens.weight", "embedding", (self.vocab_size, self.hidden_size))]
        for index, kind in enumerate(self.layer_types):
            prefix = f"model.layers.{index}"
            specs += self._mixer(prefix, kind)
            specs += self._ffn(prefix, index)
            specs += [
                TensorSpec(f"{prefix}.operator_norm.weight", "norm", (self.hidden_size,)),
                TensorSpec(f"{prefix}.ffn_norm.weight", "norm", (self.hidden_size,)),
            ]
        specs.append(TensorSpec("model.embedding_norm.weight", "norm", (self.hidden_size,)))
        if not self.tie_embeddings:
            specs.append(TensorSpec("lm_head.weight", "lm-head", (self.vocab_size, self.hidden_size)))
        return specs

    def checkpoint_tensors(self) -> list[TensorSpec]:
        """The tensors as a Hub checkpoint stores them: :meth:`tensors` with experts one by one."""
        return [stored for spec in self.tensors() for stored in _hub_layout(spec)]

    def _mixer(self, prefix: str, kind: str) -> list[TensorSpec]:
        h = self.hidden_size
        if kind == "conv":
            specs = [
                TensorSpec(f"{prefix}.conv.conv.weight", "conv", (h, 1, self.conv_kernel)),
                TensorSpec(f"{prefix}.conv.in_proj.weight", "linear", (3 * h, h)),
                TensorSpec(f"{prefix}.conv.out_proj.weight", "linear", (h, h)),
            ]
            if self.conv_bias:
                specs += [
                    TensorSpec(f"{prefix}.conv.conv.bias", "conv", (h,)),
                    TensorSpec(f"{prefix}.conv.in_proj.bias", "linear", (3 * h,)),
                    TensorSpec(f"{prefix}.conv.out_proj.bias", "linear", (h,)),
                ]
            return specs
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        attn = f"{prefix}.self_attn"
        return [
            TensorSpec(f"{attn}.q_proj.weight", "attention", (q, h)),
            TensorSpec(f"{attn}.k_proj.weight", "attention", (kv, h)),
            TensorSpec(f"{attn}.v_proj.weight", "attention", (kv, h)),
            TensorSpec(f"{attn}.out_proj.weight", "attention", (h, q)),
            TensorSpec(f"{attn}.q_layernorm.weight", "norm", (self.head_dim,)),
            TensorSpec(f"{attn}.k_layernorm.weight", "norm", (self.head_dim,)),
        ]

    def _ffn(self, prefix: str, index: int) -> list[TensorSpec]:
        h, ffn = self.hidden_size, f"{prefix}.feed_forward"
        if index < self.num_dense_layers:
            i = self.intermediate_size
            return [
                TensorSpec(f"{ffn}.w1.weight", "linear", (i, h)),
                TensorSpec(f"{ffn}.w3.weight", "linear", (i, h)),
                TensorSpec(f"{ffn}.w2.weight", "linear", (h, i)),
            ]
        e, i = self.num_experts, self.moe_intermediate_size
        specs = [
            TensorSpec(f"{ffn}.gate.weight", "router", (e, h)),
            TensorSpec(f"{ffn}.experts.gate_up_proj", "experts", (e, 2 * i, h)),
            TensorSpec(f"{ffn}.experts.down_proj", "experts", (e, h, i)),
        ]
        if self.use_expert_bias:
            specs.append(TensorSpec(f"{ffn}.expert_bias", "buffer", (e,), parameter=False))
        return specs

    def to_hf_config(self) -> dict[str, Any]:
        """The transformers ``config.json`` contents for these numbers."""
        return {
            "model_type": "lfm2_moe",
            "architectures": ["Lfm2MoeForCausalLM"],
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "layer_types": list(self.layer_types),
            "vocab_size": self.vocab_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "intermediate_size": self.intermediate_size,
            "moe_intermediate_size": self.moe_intermediate_size,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "num_dense_layers": self.num_dense_layers,
            "conv_L_cache": self.conv_kernel,
            "conv_bias": self.conv_bias,
            "tie_word_embeddings": self.tie_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "norm_eps": self.norm_eps,
            "norm_topk_prob": self.norm_topk_prob,
            "use_expert_bias": self.use_expert_bias,
            "routed_scaling_factor": self.routed_scaling_factor,
            "max_position_embeddings": self.max_position_embeddings,
        }

    @classmethod
    def hf_config_to_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Recipe ``[architecture]`` keys (kebab case) from an upstream ``config.json``.

        Raises ``KeyError`` for a missing key, ``ValueError`` for keys that disagree.
        """
        rope = config.get("rope_parameters") or {}
        layers = config["layer_types"]
        if config.get("num_hidden_layers", len(layers)) != len(layers):
            raise ValueError(
                f"num_hidden_layers ({config['num_hidden_layers']}) differs from the "
                f"{len(layers)} entries of layer_types"
            )
        fields = {
            "family": "lfm2_moe",
            "hidden-size": config["hidden_size"],
            "layer-types": list(layers),
            "vocab-size": config["vocab_size"],
            "num-attention-heads": config["num_attention_heads"],
            "num-key-value-heads": config["num_key_value_heads"],
            "intermediate-size": config["intermediate_size"],
            "moe-intermediate-size": config["moe_intermediate_size"],
            "num-experts": config["num_experts"],
            "num-experts-per-tok": config["num_experts_per_tok"],
            "num-dense-layers": config["num_dense_layers"],
            "conv-kernel": config.get("conv_L_cache", 3),
            "conv-bias": config.get("conv_bias", False),
            "tie-embeddings": config.get("tie_word_embeddings", True),
            "rope-theta": float(rope.get("rope_theta", config.get("rope_theta", 1_000_000.0))),
            "norm-eps": config.get("norm_eps", 1e-5),
            "norm-topk-prob": config.get("norm_topk_prob", True),
            "use-expert-bias": config.get("use_expert_bias", True),
            "routed-scaling-factor": float(config.get("routed_scaling_factor", 1.0)),
            "max-position-embeddings": config.get("max_position_embeddings", 128_000),
        }
        return fields



def _hub_layout(spec: TensorSpec) -> list[TensorSpec]:
    if spec.group != "experts":
        return [spec]
    host, kind = spec.name.rsplit(".", 1)
    experts, rows, cols = spec.shape
    parts = HUB_EXPERT_PARTS[kind]
    shape = (rows // len(parts), cols)
    return [TensorSpec(f"{host}.{e}.{part}.weight", spec.group, shape) for e in range(experts) for part in parts]
