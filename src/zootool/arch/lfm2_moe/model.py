"""Export-friendly LFM2-MoE decoder: the whole model as one stateful decode graph.

Semantics follow transformers' ``Lfm2MoeForCausalLM``; the graph avoids what
``torch.export`` and Core AI cannot take (data-dependent expert dispatch). The
interface is the engine contract of ``decode_graph``: inputs ``input_ids [1, q]`` and
``position_ids [1, past + q]``; states ``keyCache`` / ``valueCache`` ``[attention
layers, 1, kv_heads, S, head_dim]`` and ``convState`` ``[conv layers, 1, hidden,
kernel - 1]``, updated in place; output logits ``[1, q, vocab]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, NotImplementedFeatureError
from ..decode_graph import (
    CONV_STATE, KEY_CACHE, VALUE_CACHE, DecodeGraph, StateSpec, StepContext, causal_visible, check_context,
    decode_tokens, kv_state_specs,
)
from ..safetensors_checkpoint import tie_head
from .layers import DecoderLayer, GatherExpertMatmul, RMSNorm, SparseMoE, StackedExperts
from .weights import load_weights

_LEGACY_LAYER_NAMES = {"attention": "full_attention"}
__all__ = [
    "GatherExpertMatmul", "Lfm2MoeDecodeGraph", "Lfm2MoeDims", "StateSpec", "build_decode_graph",
    "decode_tokens", "load_weights", "replace_expert_matmul",
]  # fmt: skip

_REQUIRED_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_attention_heads",
    "num_key_value_heads", "num_experts", "num_experts_per_tok", "layer_types",
)  # fmt: skip


@dataclass(frozen=True)
class Lfm2MoeDims:
    """The numbers of an LFM2-MoE ``config.json`` the decode graph depends on."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    moe_intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    num_experts: int
    top_k: int
    layer_types: tuple[str, ...]
    num_dense_layers: int = 2
    conv_kernel: int = 3
    conv_bias: bool = False
    norm_eps: float = 1e-5
    rope_theta: float = 1_000_000.0
    use_expert_bias: bool = True
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 1.0
    tie_word_embeddings: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Lfm2MoeDims:
        """Read a transformers ``config.json`` dict (model_type ``lfm2_moe``)."""
        missing = [key for key in _REQUIRED_KEYS if config.get(key) is None]
        if missing:
            raise ConfigError(f"lfm2_moe config lacks {', '.join(missing)}", "pass the checkpoint's config.json")
        layer_types = tuple(_LEGACY_LAYER_NAMES.get(t, t) for t in config["layer_types"])
        unknown = sorted(set(layer_types) - {"conv", "full_attention"})
        if unknown:
            raise ConfigError(f"lfm2_moe layer_types has unknown entries {unknown}", "use 'conv' or 'full_attention'")
        _check_consistent(config, layer_types)
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            moe_intermediate_size=config["moe_intermediate_size"],
            num_heads=heads,
            num_kv_heads=config["num_key_value_heads"],
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            num_experts=config["num_experts"],
            top_k=config["num_experts_per_tok"],
            layer_types=layer_types,
            num_dense_layers=config.get("num_dense_layers", 2),
            conv_kernel=config.get("conv_L_cache", 3),
            conv_bias=config.get("conv_bias", False),
            norm_eps=config.get("norm_eps", 1e-5),
            rope_theta=_rope_theta(config),
            use_expert_bias=config.get("use_expert_bias", True),
            norm_topk_prob=config.get("norm_topk_prob", True),
            routed_scaling_factor=float(config.get("routed_scaling_factor", 1.0)),
            tie_word_embeddings=config.get("tie_word_embeddings", config.get("tie_embedding", True)),
        )

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)


def _check_consistent(config: Mapping[str, Any], layer_types: tuple[str, ...]) -> None:
    problems = []
    if config.get("num_hidden_layers", len(layer_types)) != len(layer_types):
        problems.append(f"num_hidden_layers {config['num_hidden_layers']} != {len(layer_types)} layer_types")
    if config["num_attention_heads"] % config["num_key_value_heads"]:
        problems.append("num_attention_heads is not a multiple of num_key_value_heads")
    if not 0 < config["num_experts_per_tok"] <= config["num_experts"]:
        problems.append("num_experts_per_tok is not within 1..num_experts")
    if problems:
        raise ConfigError(f"inconsistent lfm2_moe config: {'; '.join(problems)}", "pass the checkpoint's config.json")


def _rope_theta(config: Mapping[str, Any]) -> float:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise NotImplementedFeatureError(f"lfm2_moe export supports only default RoPE, not {rope_type!r}")
    return float(rope.get("rope_theta", config.get("rope_theta", 1_000_000.0)))


class Lfm2MoeDecodeGraph(DecodeGraph, nn.Module):
    """The decoder as one stateful decode graph. Build with :func:`build_decode_graph`."""

    def __init__(self, dims: Lfm2MoeDims, max_context: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.dims, self.max_context = dims, max_context
        self.embed_tokens = nn.Embedding(dims.vocab_size, dims.hidden_size)
        self.layers = nn.ModuleDict({str(i): DecoderLayer(dims, i) for i in range(dims.num_layers)})
        self.embedding_norm = RMSNorm(dims.hidden_size, dims.norm_eps)
        self.lm_head = nn.Linear(dims.hidden_size, dims.vocab_size, bias=False)
        tie_head(self)
        self.to(dtype)
        self._keep_expert_bias_fp32()
        self.dtype = dtype
        exponents = torch.arange(0, dims.head_dim, 2, dtype=torch.float32, device="cpu") / dims.head_dim
        self.register_buffer("inv_freq", 1.0 / dims.rope_theta**exponents, persistent=False)

    def _keep_expert_bias_fp32(self) -> None:
        for moe in self.modules():
            if isinstance(moe, SparseMoE) and moe.expert_bias is not None:
                moe.expert_bias = nn.Buffer(moe.expert_bias.to(torch.float32))

    def state_specs(self) -> list[StateSpec]:
        d = self.dims
        attention = d.layer_types.count("full_attention")
        conv = (len(d.layer_types) - attention, 1, d.hidden_size, d.conv_kernel - 1)
        return [*kv_state_specs(attention, d.num_kv_heads, d.head_dim), StateSpec(CONV_STATE, conv, "fixed")]

    def forward(
        self, input_ids: Tensor, position_ids: Tensor, keyCache: Tensor, valueCache: Tensor, convState: Tensor
    ) -> Tensor:
        states = {KEY_CACHE: keyCache, VALUE_CACHE: valueCache, CONV_STATE: convState}
        return self.decode(input_ids, position_ids, states)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.embed_tokens(input_ids)

    def head(self, h: Tensor) -> Tensor:
        return self.lm_head(self.embedding_norm(h))

    def run_layers(self, h: Tensor, ctx: StepContext, read: Mapping[str, Tensor]) -> tuple[Tensor, dict]:
        written: dict[str, list[Tensor]] = {KEY_CACHE: [], VALUE_CACHE: [], CONV_STATE: []}
        for layer in self.layers.values():
            if layer.is_attention:
                index = len(written[KEY_CACHE])
                h, (keys, values) = layer(h, ctx, (read[KEY_CACHE][index], read[VALUE_CACHE][index]))
                written[KEY_CACHE].append(keys)
                written[VALUE_CACHE].append(values)
            else:
                h, (window,) = layer(h, ctx, (read[CONV_STATE][len(written[CONV_STATE])],))
                written[CONV_STATE].append(window)
        return h, {name: rows for name, rows in written.items() if rows}

    def context(self, position_ids: Tensor, query_len: int) -> StepContext:
        positions, visible = causal_visible(position_ids, query_len)
        angles = positions.to(torch.float32).unsqueeze(-1) * self.inv_freq
        angles = torch.cat([angles, angles], dim=-1).unsqueeze(2)  # [1, q, 1, head_dim]
        # The compute dtype from a norm: norms are never quantized, the embedding may be.
        dtype = self.embedding_norm.weight.dtype
        return StepContext(cos=angles.cos().to(dtype), sin=angles.sin().to(dtype), visible=visible)


def build_decode_graph(config: Mapping[str, Any], max_context: int, dtype: torch.dtype = torch.float32) -> Lfm2MoeDecodeGraph:
    """The decode graph of a ``config.json`` dict.

    Weights are uninitialised; call :func:`load_weights`. Build under
    ``with torch.device("meta"):`` to skip allocating them before loading.
    """
    check_context(max_context)
    return Lfm2MoeDecodeGraph(Lfm2MoeDims.from_config(config), max_context, dtype)


def replace_expert_matmul(graph: nn.Module, factory: Callable[[], nn.Module]) -> int:
    """Give every sparse layer its own ``factory()`` expert matmul; returns how many were replaced.

    The replacement is called as ``matmul(hidden, indices, weight)`` with the
    contract of :class:`GatherExpertMatmul` (e.g. a custom kernel or a quantized GatherMM).
    """
    experts = [m for m in graph.modules() if isinstance(m, StackedExperts)]
    for module in experts:
        module.matmul = factory()
    return len(experts)
