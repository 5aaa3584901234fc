"""Export-friendly dense Llama-family decoder: one decode step with explicit, functional state.

Semantics follow transformers' ``LlamaForCausalLM``, ``Qwen3ForCausalLM`` and
``MistralForCausalLM``. The interface is the one of ``lfm2_moe_model``: inputs of a
step are ``input_ids`` int32 ``[1, 1]`` (or ``hidden_states`` ``[1, 1, H]`` for a
later chunk), ``position`` int32 ``[1]``, then the K and V caches ``[1, kv_heads,
max_context, head_dim]`` of every layer of the chunk in layer order. Outputs:
logits ``[1, 1, vocab]`` (or hidden states), then the updated caches in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, NotImplementedFeatureError
from .decode_step import DecodeChunkIO, StateSpec, StepContext, cache_rows, decode_tokens, split_layers
from .llama import ARCHITECTURES, rope_settings
from .llama_layers import DecoderLayer, RMSNorm, rope_tables
from .llama_weights import load_weights

__all__ = ["LlamaDecodeChunk", "LlamaDims", "StateSpec", "build_decode_chunks", "decode_tokens", "load_weights"]

_REQUIRED_KEYS = (
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
)  # fmt: skip


@dataclass(frozen=True)
class LlamaDims:
    """The numbers of a llama/qwen3/mistral ``config.json`` the decode graph depends on."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    qk_norm: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    rope_scaling: Mapping[str, Any] | None = None
    sliding_window: int | None = None
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LlamaDims:
        """Read a transformers ``config.json`` dict (model_type llama, qwen3 or mistral)."""
        _check_config(config)
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        if heads % kv_heads:
            raise ConfigError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
        theta, scaling = rope_settings(dict(config))
        model_type = config["model_type"]
        return cls(
            model_type=model_type,
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            qk_norm=model_type == "qwen3",
            attention_bias=bool(config.get("attention_bias", False)) and model_type != "mistral",
            mlp_bias=bool(config.get("mlp_bias", False)) and model_type == "llama",
            norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            sliding_window=config.get("sliding_window") if model_type == "mistral" else None,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


def _check_config(config: Mapping[str, Any]) -> None:
    missing = [key for key in _REQUIRED_KEYS if config.get(key) is None]
    if missing:
        raise ConfigError(f"llama-family config lacks {', '.join(missing)}", "pass the checkpoint's config.json")
    if config["model_type"] not in ARCHITECTURES:
        raise ConfigError(
            f"model_type {config['model_type']!r} is not a llama-family type", f"use one of {', '.join(ARCHITECTURES)}"
        )
    if config.get("hidden_act", "silu") != "silu":
        raise NotImplementedFeatureError(f"activation {config['hidden_act']!r} is not supported; only silu is")
    layer_types = set(config.get("layer_types") or ())
    if config.get("use_sliding_window") or layer_types - {"full_attention"}:
        raise NotImplementedFeatureError(
            "per-layer sliding-window attention is not supported by the llama-family export",
            "only checkpoints whose layers are all full attention (or Mistral's uniform sliding_window) convert",
        )


class LlamaDecodeChunk(DecodeChunkIO, nn.Module):
    """Layers ``[start, stop)`` of the decoder as one functional decode step.

    The first chunk embeds ``input_ids``; the last applies the final norm and the
    (possibly tied) head. Build with :func:`build_decode_chunks`.
    """

    def __init__(self, dims: LlamaDims, max_context: int, layers: range, dtype: torch.dtype) -> None:
        super().__init__()
        self._place(dims, max_context, layers)
        if self.is_first:
            self.embed_tokens = nn.Embedding(dims.vocab_size, dims.hidden_size)
        self.layers = nn.ModuleDict({str(i): DecoderLayer(dims) for i in layers})
        if self.is_last:
            self.norm = RMSNorm(dims.hidden_size, dims.norm_eps)
            self.lm_head = nn.Linear(dims.hidden_size, dims.vocab_size, bias=False)
        self.to(dtype)
        self.dtype = dtype
        # Registered after the cast: the tables stay fp32 in every build (not weights: never loaded).
        tables = rope_tables(dims.head_dim, max_context, dims.rope_theta, dims.rope_scaling)
        self.register_buffer("rope_cos", tables[0], persistent=False)
        self.register_buffer("rope_sin", tables[1], persistent=False)

    def state_specs(self) -> list[StateSpec]:
        """The carried K/V caches, in input (and output) order."""
        d = self.dims
        cache = (1, d.num_kv_heads, self.max_context, d.head_dim)
        return [StateSpec(f"layer{i}_{kind}", cache) for i in self.layer_range for kind in ("key", "value")]


    def forward(self, x: Tensor, position: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        h = self.embed_tokens(x) if self.is_first else x
        ctx = self._context(position, h.dtype)
        new_states: list[Tensor] = []
        for layer in self.layers.values():
            index = len(new_states)
            h, keys, values = layer(h, ctx, states[index], states[index + 1])
            new_states += [keys, values]
        if self.is_last:
            h = self.lm_head(self.norm(h))
        return (h, *new_states)

    def _context(self, position: Tensor, dtype: torch.dtype) -> StepContext:
        # A table row, not position * inv_freq: fp16 arithmetic would lose the angle at long context.
        cos = torch.index_select(self.rope_cos, 0, position).unsqueeze(1)
        sin = torch.index_select(self.rope_sin, 0, position).unsqueeze(1)
        rows, write = cache_rows(position, self.max_context)
        visible = rows <= position
        if self.dims.sliding_window is not None and self.max_context > self.dims.sliding_window:
            visible = visible & (rows > position - self.dims.sliding_window)
        return StepContext(
            cos=cos.to(dtype),
            sin=sin.to(dtype),
            write=write,
            visible=visible.view(1, 1, 1, self.max_context),
        )


def build_decode_chunks(
    config: Mapping[str, Any], max_context: int, chunks: int = 1, dtype: torch.dtype = torch.float32
) -> list[LlamaDecodeChunk]:
    """Decode-step modules for a ``config.json`` dict, split into ``chunks`` pieces.

    Weights are uninitialised; call :func:`load_weights`. Build under
    ``with torch.device("meta"):`` to skip allocating them before loading.
    """
    if max_context < 1:
        raise ConfigError(f"max_context must be positive, got {max_context}")
    dims = LlamaDims.from_config(config)
    return [LlamaDecodeChunk(dims, max_context, r, dtype) for r in split_layers(dims.num_layers, chunks)]
