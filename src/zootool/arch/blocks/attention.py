"""GQA attention over the shared KV caches (``layout.Attention``), with every family's switches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..decode_graph import StepContext, grouped_attention
from ..layout import Attention as AttentionSpec
from .norm import RMSNorm
from .rotary import rope_composite, rotate, rotate_by


class Attention(nn.Module):
    """q/k/v/o projections (optional biases), optional q/k RMSNorm, RoPE (or none), GQA.

    Past keys and values come from the KV states; ``forward`` returns this call's to store.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        h, d = spec.hidden, spec.head_dim
        self.spec = spec
        self.q_proj = nn.Linear(h, spec.heads * d * (2 if spec.output_gate else 1), bias=spec.qkv_bias)
        self.k_proj = nn.Linear(h, spec.kv_heads * d, bias=spec.qkv_bias)
        self.v_proj = nn.Linear(h, spec.kv_heads * d, bias=spec.qkv_bias)
        self.o_proj = nn.Linear(spec.heads * d, h, bias=spec.o_bias)
        if spec.qk_norm != "none":
            width = (d, d) if spec.qk_norm == "head" else (spec.heads * d, spec.kv_heads * d)
            self.q_norm = RMSNorm(width[0], spec.norm.eps, spec.norm.offset)
            self.k_norm = RMSNorm(width[1], spec.norm.eps, spec.norm.offset)
        self.rope: nn.Module | None = None

    def use_composite(self) -> bool:
        """Turn q and k with the Core AI converter's ``rope`` composite; whether this layer has RoPE."""
        if self.spec.rotary is None:
            return False
        self.rope = rope_composite(self.spec.rotary.dims, self.spec.head_dim)
        return True

    def forward(
        self, x: Tensor, ctx: StepContext, past_keys: Tensor, past_values: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Returns (output ``[1, q, H]``, this call's keys and values ``[1, KV, q, D]`` to store)."""
        spec = self.spec
        queries, gate = self._queries_and_gate(self.q_proj(x))
        q = self._heads(queries, "q_norm", spec.heads)
        k = self._heads(self.k_proj(x), "k_norm", spec.kv_heads)
        if spec.rotary is not None:
            cos, sin = ctx.rotary[spec.rotary.table]
            q, k = self._rotated(q, k, cos, sin)
        k = k.transpose(1, 2)
        v = self.v_proj(x).view(1, -1, spec.kv_heads, spec.head_dim).transpose(1, 2)
        out = grouped_attention(
            q, self._joined(past_keys, k), self._joined(past_values, v), ctx.visible[spec.window],
            (spec.heads, spec.kv_heads, spec.head_dim), spec.scale,
        )
        if gate is not None:
            out = out * torch.sigmoid(gate)
        return self.o_proj(out), (k, v)

    def _queries_and_gate(self, projected: Tensor) -> tuple[Tensor, Tensor | None]:
        """An output-gated q_proj holds, per head, the head's query then its gate: ``[1, q, heads * D]`` each."""
        if not self.spec.output_gate:
            return projected, None
        heads, d = self.spec.heads, self.spec.head_dim
        paired = projected.view(1, -1, heads, 2 * d)
        # Sliced, then made contiguous before any view: a view of a strided slice guards on q != 1.
        query, gate = (part.clone(memory_format=torch.contiguous_format).view(1, -1, heads * d)
                       for part in (paired[..., :d], paired[..., d:]))
        return query, gate

    def _rotated(self, q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        dims, head_dim = self.spec.rotary.dims, self.spec.head_dim
        if self.rope is not None:
            return rotate_by(self.rope, q, cos, sin, dims), rotate_by(self.rope, k, cos, sin, dims)
        return rotate(q, cos, sin, dims, head_dim), rotate(k, cos, sin, dims, head_dim)

    def _heads(self, projected: Tensor, norm: str, heads: int) -> Tensor:
        """``[1, q, heads * D]`` -> ``[1, q, heads, D]``, q/k-normed per head or over the whole projection."""
        if self.spec.qk_norm == "whole":
            projected = getattr(self, norm)(projected)
        split = projected.view(1, -1, heads, self.spec.head_dim)
        return getattr(self, norm)(split) if self.spec.qk_norm == "head" else split

    @staticmethod
    def _joined(past: Tensor, new: Tensor) -> Tensor:
        return torch.cat([past, new], dim=2)
