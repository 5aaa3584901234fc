"""Export-friendly dense Llama-family decoder: the whole model as one stateful decode graph.

Semantics follow transformers' ``LlamaForCausalLM``, ``Qwen3ForCausalLM`` and
``MistralForCausalLM``. The interface is the engine contract of ``decode_graph``:
inputs ``input_ids [1, q]`` and ``position_ids [1, past + q]``; states ``keyCache`` /
``valueCache`` ``[layers, 1, kv_heads, S, head_dim]``, updated in place; output
logits ``[1, q, vocab]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, NotImplementedFeatureError
from ..decode_graph import (
    KEY_CACHE, VALUE_CACHE, DecodeGraph, StateSpec, StepContext, causal_visible, check_context, decode_tokens,
    kv_state_specs,
)
from ..safetensors_checkpoint import tie_head
from .layers import DecoderLayer, RMSNorm, rope_tables
from .schema import ARCHITECTURES, rope_settings
from .weights import load_weights

__all__ = ["LlamaDecodeGraph", "LlamaDims", "StateSpec", "build_decode_graph", "decode_tokens", "load_weights"]

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


class LlamaDecodeGraph(DecodeGraph, nn.Module):
    """The decoder as one stateful decode graph. Build with :func:`build_decode_graph`."""

    def __init__(self, dims: LlamaDims, max_context: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.dims, self.max_context = dims, max_context
        self.embed_tokens = nn.Embedding(dims.vocab_size, dims.hidden_size)
        self.layers = nn.ModuleDict({str(i): DecoderLayer(dims) for i in range(dims.num_layers)})
        self.norm = RMSNorm(dims.hidden_size, dims.norm_eps)
        self.lm_head = nn.Linear(dims.hidden_size, dims.vocab_size, bias=False)
        tie_head(self)
        self.to(dtype)
        self.dtype = dtype
        # Registered after the cast: the tables stay fp32 in every build (not weights: never loaded).
        tables = rope_tables(dims.head_dim, max_context, dims.rope_theta, dims.rope_scaling)
        self.register_buffer("rope_cos", tables[0], persistent=False)
        self.register_buffer("rope_sin", tables[1], persistent=False)

    def state_specs(self) -> list[StateSpec]:
        return kv_state_specs(self.dims.num_layers, self.dims.num_kv_heads, self.dims.head_dim)

    def forward(self, input_ids: Tensor, position_ids: Tensor, keyCache: Tensor, valueCache: Tensor) -> Tensor:
        return self.decode(input_ids, position_ids, {KEY_CACHE: keyCache, VALUE_CACHE: valueCache})

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.embed_tokens(input_ids)

    def head(self, h: Tensor) -> Tensor:
        return self.lm_head(self.norm(h))

    def run_layers(self, h: Tensor, ctx: StepContext, read: Mapping[str, Tensor]) -> tuple[Tensor, dict]:
        keys, values = [], []
        for index, layer in enumerate(self.layers.values()):
            h, k, v = layer(h, ctx, read[KEY_CACHE][index], read[VALUE_CACHE][index])
            keys.append(k)
            values.append(v)
        return h, {KEY_CACHE: keys, VALUE_CACHE: values}

    def context(self, position_ids: Tensor, query_len: int) -> StepContext:
        positions, visible = causal_visible(position_ids, query_len, self._window())
        # A table row, not position * inv_freq: fp16 arithmetic would lose the angle at long context.
        cos = torch.index_select(self.rope_cos, 0, positions.reshape(-1)).view(1, -1, 1, self.dims.head_dim)
        sin = torch.index_select(self.rope_sin, 0, positions.reshape(-1)).view(1, -1, 1, self.dims.head_dim)
        # The compute dtype from a norm: norms are never quantized, the embedding may be.
        dtype = self.norm.weight.dtype
        return StepContext(cos=cos.to(dtype), sin=sin.to(dtype), visible=visible)

    def _window(self) -> int | None:
        window = self.dims.sliding_window
        return window if window is not None and self.max_context > window else None


def build_decode_graph(config: Mapping[str, Any], max_context: int, dtype: torch.dtype = torch.float32) -> LlamaDecodeGraph:
    """The decode graph of a ``config.json`` dict.

    Weights are uninitialised; call :func:`load_weights`. Build under
    ``with torch.device("meta"):`` to skip allocating them before loading.
    """
    check_context(max_context)
    return LlamaDecodeGraph(LlamaDims.from_config(config), max_context, dtype)
