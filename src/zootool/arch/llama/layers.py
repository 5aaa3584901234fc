"""Building blocks of the dense Llama-family decode step (see ``llama_model``).

Each block keeps the parameter names of its transformers counterpart
(``LlamaAttention``, ``Qwen3Attention``, ``LlamaMLP``, ...), so checkpoint tensors
map one to one. The per-step context is shared with LFM2-MoE.

Everything here must also hold when a converter computes the whole graph in fp16
(coremltools' fp16 pass drops explicit fp32 casts): the norm rescales before
squaring, and RoPE angles come from fp32 tables rather than fp16 arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode_graph import StepContext, grouped_attention
from ..norms import RMSNorm

if TYPE_CHECKING:
    from .model import LlamaDims

__all__ = ["Attention", "DecoderLayer", "MLP", "RMSNorm", "StepContext", "rope_inverse_frequencies", "rope_tables"]


def rope_tables(head_dim: int, max_context: int, theta: float, scaling: Mapping[str, Any] | None) -> Tensor:
    """fp32 ``[2, max_context, head_dim]``: cos and sin of every position's RoPE angles."""
    inv_freq = rope_inverse_frequencies(head_dim, theta, scaling)
    angles = torch.arange(max_context, dtype=torch.float32, device="cpu").unsqueeze(-1) * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return torch.stack([angles.cos(), angles.sin()])


def rope_inverse_frequencies(head_dim: int, theta: float, scaling: Mapping[str, Any] | None) -> Tensor:
    """fp32 RoPE inverse frequencies, with transformers' ``linear`` or ``llama3`` scaling applied."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim
    inv_freq = 1.0 / theta**exponents
    if not scaling:
        return inv_freq
    factor = float(scaling["factor"])
    if scaling["rope_type"] == "linear":
        return inv_freq / factor
    return _llama3_frequencies(inv_freq, factor, scaling)


def _llama3_frequencies(inv_freq: Tensor, factor: float, scaling: Mapping[str, Any]) -> Tensor:
    # Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelength - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= original / high) & (wavelength <= original / low)
    return torch.where(medium, blended, scaled)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, half: int) -> Tensor:
    # `half` is passed as a Python int: a traced `x.shape[-1] // 2` trips coremltools' jit frontend.
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class Attention(nn.Module):
    """GQA over a fixed-length KV cache; optional per-head q/k RMSNorm (Qwen3) and biases."""

    def __init__(self, dims: LlamaDims) -> None:
        super().__init__()
        h, d, bias = dims.hidden_size, dims.head_dim, dims.attention_bias
        self.num_heads, self.num_kv_heads, self.head_dim = dims.num_heads, dims.num_kv_heads, d
        self.q_proj = nn.Linear(h, dims.num_heads * d, bias=bias)
        self.k_proj = nn.Linear(h, dims.num_kv_heads * d, bias=bias)
        self.v_proj = nn.Linear(h, dims.num_kv_heads * d, bias=bias)
        self.o_proj = nn.Linear(dims.num_heads * d, h, bias=bias)
        if dims.qk_norm:
            self.q_norm = RMSNorm(d, dims.norm_eps)
            self.k_norm = RMSNorm(d, dims.norm_eps)
        self.qk_norm = dims.qk_norm

    def forward(self, x: Tensor, ctx: StepContext, past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, ...]:
        """Returns (output ``[1, q, H]``, this call's keys and values ``[1, KV, q, D]``)."""
        q = self.q_proj(x).view(1, -1, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(1, -1, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        half = self.head_dim // 2
        q = _rotate(q, ctx.cos, ctx.sin, half)
        k = _rotate(k, ctx.cos, ctx.sin, half).transpose(1, 2)
        v = self.v_proj(x).view(1, -1, self.num_kv_heads, self.head_dim).transpose(1, 2)
        keys, values = torch.cat([past_keys, k], dim=2), torch.cat([past_values, v], dim=2)
        out = grouped_attention(q, keys, values, ctx, (self.num_heads, self.num_kv_heads, self.head_dim))
        return self.o_proj(out), k, v


class MLP(nn.Module):
    """SwiGLU feed-forward: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, hidden: int, intermediate: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm attention and pre-norm MLP, both residual."""

    def __init__(self, dims: LlamaDims) -> None:
        super().__init__()
        self.self_attn = Attention(dims)
        self.mlp = MLP(dims.hidden_size, dims.intermediate_size, dims.mlp_bias)
        self.input_layernorm = RMSNorm(dims.hidden_size, dims.norm_eps)
        self.post_attention_layernorm = RMSNorm(dims.hidden_size, dims.norm_eps)

    def forward(self, h: Tensor, ctx: StepContext, past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, ...]:
        mixed, keys, values = self.self_attn(self.input_layernorm(h), ctx, past_keys, past_values)
        h = h + mixed
        return h + self.mlp(self.post_attention_layernorm(h)), keys, values
