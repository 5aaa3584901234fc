"""Building blocks of the LFM2-MoE decode step (see ``lfm2_moe_model``).

Each block mirrors one transformers ``Lfm2Moe*`` module and keeps its parameter
names, so checkpoint tensors map one to one (experts: to the stacked layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode_graph import StepContext, grouped_attention
from ..norms import RMSNorm

if TYPE_CHECKING:
    from .model import Lfm2MoeDims


class ShortConv(nn.Module):
    """Gated depthwise causal conv mixer; the state is the last ``kernel - 1`` gated inputs."""

    def __init__(self, dims: Lfm2MoeDims) -> None:
        super().__init__()
        h = dims.hidden_size
        self.kernel = dims.conv_kernel
        self.in_proj = nn.Linear(h, 3 * h, bias=dims.conv_bias)
        self.conv = nn.Conv1d(h, h, dims.conv_kernel, groups=h, bias=dims.conv_bias)
        self.out_proj = nn.Linear(h, h, bias=dims.conv_bias)

    def forward(self, x: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
        """``x [1, q, H]``, ``window [1, H, kernel-1]`` -> (output ``[1, q, H]``, next window)."""
        b, c, v = self.in_proj(x).chunk(3, dim=-1)
        query_len = x.shape[1]
        full = torch.cat([window, (b * v).transpose(1, 2)], dim=-1)  # [1, H, kernel - 1 + q]
        taps = self.conv.weight.squeeze(1)  # [H, kernel]
        mixed = full[:, :, 0:query_len] * taps[:, 0:1]
        for tap in range(1, self.kernel):
            mixed = mixed + full[:, :, tap : tap + query_len] * taps[:, tap : tap + 1]
        if self.conv.bias is not None:
            mixed = mixed + self.conv.bias.unsqueeze(-1)
        return self.out_proj(c * mixed.transpose(1, 2)), full[:, :, query_len:]


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """GQA with per-head q/k RMSNorm and RoPE; past keys and values come from the KV states."""

    def __init__(self, dims: Lfm2MoeDims) -> None:
        super().__init__()
        h, d = dims.hidden_size, dims.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = dims.num_heads, dims.num_kv_heads, d
        self.q_proj = nn.Linear(h, dims.num_heads * d, bias=False)
        self.k_proj = nn.Linear(h, dims.num_kv_heads * d, bias=False)
        self.v_proj = nn.Linear(h, dims.num_kv_heads * d, bias=False)
        self.out_proj = nn.Linear(dims.num_heads * d, h, bias=False)
        self.q_layernorm = RMSNorm(d, dims.norm_eps)
        self.k_layernorm = RMSNorm(d, dims.norm_eps)

    def forward(self, x: Tensor, ctx: StepContext, past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, ...]:
        """Returns (output ``[1, q, H]``, this call's keys and values ``[1, KV, q, D]``)."""
        q = _rotate(self.q_layernorm(self.q_proj(x).view(1, -1, self.num_heads, self.head_dim)), ctx.cos, ctx.sin)
        k = _rotate(self.k_layernorm(self.k_proj(x).view(1, -1, self.num_kv_heads, self.head_dim)), ctx.cos, ctx.sin)
        k = k.transpose(1, 2)
        v = self.v_proj(x).view(1, -1, self.num_kv_heads, self.head_dim).transpose(1, 2)
        keys, values = torch.cat([past_keys, k], dim=2), torch.cat([past_values, v], dim=2)
        out = grouped_attention(q, keys, values, ctx, (self.num_heads, self.num_kv_heads, self.head_dim))
        return self.out_proj(out), k, v


class DenseMLP(nn.Module):
    """SwiGLU feed-forward of the first ``num_dense_layers`` layers."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(hidden, intermediate, bias=False)
        self.w3 = nn.Linear(hidden, intermediate, bias=False)
        self.w2 = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class _IndexSelectGatherMM(nn.Module):
    """Same contract as coreai_torch's ``GatherMM`` (lhs gather only), for torch-only installs."""

    def forward(self, lhs: Tensor, rhs: Tensor, lhs_indices: Tensor | None = None) -> Tensor:
        if lhs_indices is not None:
            picked = torch.index_select(lhs, 0, lhs_indices.flatten().to(torch.int32))
            lhs = picked.view(*lhs_indices.shape, *lhs.shape[1:])
        return torch.matmul(lhs, rhs)


def _default_gather_mm() -> nn.Module:
    try:
        from coreai_torch.composite_ops import GatherMM
    except ImportError:
        return _IndexSelectGatherMM()
    return GatherMM()


class GatherExpertMatmul(nn.Module):
    """The pluggable expert matmul: ``out[t, j] = weight[indices[t, j]] @ hidden[t(, j)]``.

    ``hidden`` is ``[T, in]`` (shared by the k routed experts) or ``[T, k, in]``;
    ``indices`` is ``[T, k]``; ``weight`` is the stacked ``[E, out, in]`` expert
    tensor. Returns ``[T, k, out]``. Expressed as a lhs-gathered ``GatherMM`` so
    the converter can keep it as its composite op. ``replace_expert_matmul`` swaps
    in any module of this signature (custom kernel, quantized GatherMM).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gather_mm = _default_gather_mm()

    def forward(self, hidden: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
        if hidden.dim() == 2:
            hidden = hidden.unsqueeze(1).expand(-1, indices.shape[1], -1)
        return self.gather_mm(weight, hidden.unsqueeze(-1), lhs_indices=indices).squeeze(-1)


class StackedExperts(nn.Module):
    """Expert weights stacked as transformers 5 stores them, plus the matmul that reads them."""

    def __init__(self, dims: Lfm2MoeDims) -> None:
        super().__init__()
        e, h, i = dims.num_experts, dims.hidden_size, dims.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.zeros(e, 2 * i, h))
        self.down_proj = nn.Parameter(torch.zeros(e, h, i))
        self.matmul: nn.Module = GatherExpertMatmul()

    def forward(self, x: Tensor, indices: Tensor, weights: Tensor) -> Tensor:
        gate, up = self.matmul(x, indices, self.gate_up_proj).chunk(2, dim=-1)
        down = self.matmul(F.silu(gate) * up, indices, self.down_proj)
        return (down * weights.unsqueeze(-1)).sum(1)


class SparseMoE(nn.Module):
    """Sigmoid top-k routing; the expert bias steers selection only, never the weights."""

    def __init__(self, dims: Lfm2MoeDims) -> None:
        super().__init__()
        self.top_k, self.normalize = dims.top_k, dims.norm_topk_prob
        self.scale = dims.routed_scaling_factor
        self.gate = nn.Linear(dims.hidden_size, dims.num_experts, bias=False)
        self.expert_bias = nn.Buffer(torch.zeros(dims.num_experts)) if dims.use_expert_bias else None
        self.experts = StackedExperts(dims)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.view(-1, x.shape[-1])
        scores = torch.sigmoid(self.gate(flat))
        # Ranked in fp32 so a reduced-precision build picks the experts the fp32 model picks.
        ranking = scores if self.expert_bias is None else scores.to(torch.float32) + self.expert_bias
        _, indices = torch.topk(ranking, self.top_k, dim=-1)
        weights = torch.gather(scores, 1, indices)
        if self.normalize:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-6)
        return self.experts(flat, indices, weights * self.scale).view_as(x)


class DecoderLayer(nn.Module):
    """Pre-norm mixer (conv or attention) and pre-norm feed-forward, both residual."""

    def __init__(self, dims: Lfm2MoeDims, index: int) -> None:
        super().__init__()
        self.is_attention = dims.layer_types[index] == "full_attention"
        if self.is_attention:
            self.self_attn = Attention(dims)
        else:
            self.conv = ShortConv(dims)
        dense = index < dims.num_dense_layers
        self.feed_forward = DenseMLP(dims.hidden_size, dims.intermediate_size) if dense else SparseMoE(dims)
        self.operator_norm = RMSNorm(dims.hidden_size, dims.norm_eps)
        self.ffn_norm = RMSNorm(dims.hidden_size, dims.norm_eps)

    def forward(self, h: Tensor, ctx: StepContext, past: Sequence[Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``past`` is (keys, values) for attention, (window,) for conv; returns what to store."""
        normed = self.operator_norm(h)
        if self.is_attention:
            mixed, keys, values = self.self_attn(normed, ctx, past[0], past[1])
            written: tuple[Tensor, ...] = (keys, values)
        else:
            mixed, window = self.conv(normed, past[0])
            written = (window,)
        h = h + mixed
        return h + self.feed_forward(self.ffn_norm(h)), written
