"""Export-friendly LFM2-MoE decoder: one decode step with explicit, functional state.

Semantics follow transformers' ``Lfm2MoeForCausalLM``; the graph avoids what
``torch.export`` and Core AI cannot take (data-dependent expert dispatch, in-place
cache updates). Inputs of a step: ``input_ids`` int32 ``[1, 1]`` (or
``hidden_states`` ``[1, 1, H]`` for a later chunk), ``position`` int32 ``[1]``,
then the state of every layer of the chunk in layer order (conv layers: one
``[1, H, L]`` window; attention layers: K and V caches ``[1, kv_heads,
max_context, head_dim]``). Outputs: logits ``[1, 1, vocab]`` (or hidden states)
followed by the updated states in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, NotImplementedFeatureError
from .decode_step import DecodeChunkIO, StateSpec, StepContext, cache_rows, decode_tokens, split_layers
from .lfm2_moe_layers import DecoderLayer, GatherExpertMatmul, RMSNorm, SparseMoE, StackedExperts
from .lfm2_moe_weights import load_weights

_LEGACY_LAYER_NAMES = {"attention": "full_attention"}
__all__ = [
    "GatherExpertMatmul", "Lfm2MoeDecodeChunk", "Lfm2MoeDims", "StateSpec",
    "build_decode_chunks", "decode_tokens", "load_weights", "replace_expert_matmul", "split_layers",
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


class Lfm2MoeDecodeChunk(DecodeChunkIO, nn.Module):
    """Layers ``[start, stop)`` of the decoder as one functional decode step.

    The first chunk embeds ``input_ids``; the last applies the final norm and the
    (tied) head. Build with :func:`build_decode_chunks`.
    """

    def __init__(self, dims: Lfm2MoeDims, max_context: int, layers: range, dtype: torch.dtype) -> None:
        super().__init__()
        self._place(dims, max_context, layers)
        if self.is_first:
            self.embed_tokens = nn.Embedding(dims.vocab_size, dims.hidden_size)
        self.layers = nn.ModuleDict({str(i): DecoderLayer(dims, i) for i in layers})
        if self.is_last:
            self.embedding_norm = RMSNorm(dims.hidden_size, dims.norm_eps)
            self.lm_head = nn.Linear(dims.hidden_size, dims.vocab_size, bias=False)
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
        """The carried states, in input (and output) order."""
        d = self.dims
        specs = []
        for index in self.layer_range:
            if d.layer_types[index] == "full_attention":
                cache = (1, d.num_kv_heads, self.max_context, d.head_dim)
                specs += [StateSpec(f"layer{index}_key", cache), StateSpec(f"layer{index}_value", cache)]
            else:
                specs.append(StateSpec(f"layer{index}_conv", (1, d.hidden_size, d.conv_kernel)))
        return specs


    def forward(self, x: Tensor, position: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        h = self.embed_tokens(x) if self.is_first else x
        ctx = self._context(position, h.dtype)
        new_states: list[Tensor] = []
        for layer in self.layers.values():
            count = 2 if layer.is_attention else 1
            h, updated = layer(h, ctx, states[len(new_states) : len(new_states) + count])
            new_states += updated
        if self.is_last:
            h = self.lm_head(self.embedding_norm(h))
        return (h, *new_states)

    def _context(self, position: Tensor, dtype: torch.dtype) -> StepContext:
        angles = position.to(torch.float32).unsqueeze(-1) * self.inv_freq
        angles = torch.cat([angles, angles], dim=-1).unsqueeze(1)
        rows, write = cache_rows(position, self.max_context)
        return StepContext(
            cos=angles.cos().to(dtype),
            sin=angles.sin().to(dtype),
            write=write,
            visible=(rows <= position).view(1, 1, 1, self.max_context),
        )


def build_decode_chunks(
    config: Mapping[str, Any], max_context: int, chunks: int = 1, dtype: torch.dtype = torch.float32
) -> list[Lfm2MoeDecodeChunk]:
    """Decode-step modules for a ``config.json`` dict, split into ``chunks`` pieces.

    Weights are uninitialised (zeros); call :func:`load_weights`. Build under
    ``with torch.device("meta"):`` to skip allocating them before loading.
    """
    if max_context < 1:
        raise ConfigError(f"max_context must be positive, got {max_context}")
    dims = Lfm2MoeDims.from_config(config)
    return [Lfm2MoeDecodeChunk(dims, max_context, r, dtype) for r in split_layers(dims.num_layers, chunks)]


def replace_expert_matmul(chunks: Sequence[nn.Module], factory: Callable[[], nn.Module]) -> int:
    """Give every sparse layer its own ``factory()`` expert matmul; returns how many were replaced.

    The replacement is called as ``matmul(hidden, indices, weight)`` with the
    contract of :class:`GatherExpertMatmul` (e.g. a custom kernel or a quantized GatherMM).
    """
    experts = [m for chunk in chunks for m in chunk.modules() if isinstance(m, StackedExperts)]
    for module in experts:
        module.matmul = factory()
    return len(experts)
