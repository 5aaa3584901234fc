"""Gated delta-rule linear attention (``layout.GatedDeltaNet``): Qwen3-Next's and Qwen3.5's recurrent mixer.

Per call, over its ``q`` new tokens: one projection goes through a depthwise causal conv (its
window is the ``convStates`` row), q/k/v come out of it, and each value head's
``[key_dim, value_dim]`` state (the ``recurrentStates`` row) is decayed by ``exp(g)`` and
corrected by the delta rule, token by token. The recurrence is coreai-torch's
``GatedDeltaUpdate`` composite: a ``while`` loop over the call's tokens that the converter
lowers and the Linux CPU runtime runs, so one graph serves decode (``q = 1``) and a whole
prompt (coreai-torch 0.4.3, coreai-core 1.0.0b3; docs/coreai-notes.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode_graph import StepContext
from ..layout import GatedDeltaNet as GatedDeltaNetSpec
from .conv import causal_conv

L2_EPS = 1e-6  # transformers' (and FLA's) l2norm of queries and keys


class GatedRMSNorm(nn.Module):
    """RMS norm of each head's output, scaled by ``w`` and gated by ``silu(z)`` (computed in fp32)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        wide = x.to(torch.float32)
        normed = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * normed.to(x.dtype) * F.silu(gate.to(torch.float32))).to(x.dtype)


class GatedDeltaNet(nn.Module):
    """The mixer; ``forward`` returns its output and the conv window and recurrent state to store."""

    def __init__(self, spec: GatedDeltaNetSpec) -> None:
        super().__init__()
        from coreai_torch.composite_ops import GatedDeltaUpdate

        self.spec = spec
        h, keys, values, heads = spec.hidden, spec.key_heads * spec.key_dim, spec.value_heads * spec.value_dim, spec.value_heads
        if spec.fused:
            self.in_proj_qkvz = nn.Linear(h, 2 * keys + 2 * values, bias=False)
            self.in_proj_ba = nn.Linear(h, 2 * heads, bias=False)
        else:
            self.in_proj_qkv = nn.Linear(h, spec.conv_channels, bias=False)
            self.in_proj_z = nn.Linear(h, values, bias=False)
            self.in_proj_b = nn.Linear(h, heads, bias=False)
            self.in_proj_a = nn.Linear(h, heads, bias=False)
        channels = spec.conv_channels
        self.conv1d = nn.Conv1d(channels, channels, spec.kernel, groups=channels, bias=False)
        self.dt_bias = nn.Parameter(torch.ones(heads))
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.norm = GatedRMSNorm(spec.value_dim, spec.norm.eps)
        self.out_proj = nn.Linear(values, h, bias=False)
        # Normalised here in fp32: the composite's own l2norm squares in the input dtype (fp16 overflows).
        self.delta_rule = GatedDeltaUpdate(use_qk_l2_norm=False)
        # Key head of each value head (consecutive value heads share one), gathered: no reshape of an expansion.
        group = heads // spec.key_heads
        self.register_buffer("key_head_of", torch.arange(heads, dtype=torch.int32, device="cpu") // group,
                             persistent=False)

    def forward(self, x: Tensor, ctx: StepContext, window: Tensor, state: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x [1, q, H]``, ``window [1, C, kernel - 1]``, ``state [1, Hv, Dk, Dv]``."""
        spec = self.spec
        mixed, z, b, a = self._projections(x)
        mixed, window = causal_conv(self.conv1d, window, mixed.transpose(1, 2))
        mixed = _contiguous(F.silu(mixed).transpose(1, 2))  # [1, q, C]
        keys = spec.key_heads * spec.key_dim
        query, key, value = torch.split(mixed, [keys, keys, spec.value_heads * spec.value_dim], dim=-1)
        query, key = (self._per_value_head(_l2_normed(_contiguous(part).view(1, -1, spec.key_heads, spec.key_dim)))
                      for part in (query, key))
        value = _contiguous(value).view(1, -1, spec.value_heads, spec.value_dim).transpose(1, 2)
        beta = torch.sigmoid(b.to(torch.float32)).transpose(1, 2)  # [1, Hv, q]
        decay = -torch.exp(self.A_log.to(torch.float32)) * F.softplus(a.to(torch.float32) + self.dt_bias.to(torch.float32))
        # fp32 in, fp32 out: the composite computes the rule in fp32 and returns the query's dtype.
        out, new_state = self.delta_rule(query, key, _contiguous(value.to(torch.float32)), decay.transpose(1, 2),
                                         beta, state)
        out = self.norm(out.to(x.dtype), z.view(1, -1, spec.value_heads, spec.value_dim))  # [1, q, Hv, Dv]
        out = self.out_proj(_contiguous(out).view(1, -1, spec.value_heads * spec.value_dim))
        return out, (window, new_state.to(state.dtype))

    def _projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(conv input [1, q, C], z [1, q, Hv * Dv], b [1, q, Hv], a [1, q, Hv])``."""
        if not self.spec.fused:
            return self.in_proj_qkv(x), self.in_proj_z(x), self.in_proj_b(x), self.in_proj_a(x)
        return self._unfused(self.in_proj_qkvz(x), self.in_proj_ba(x))

    def _unfused(self, qkvz: Tensor, ba: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Qwen3-Next's projections hold, per key head, its q, k, then its value heads' v and z (and b, a)."""
        spec = self.spec
        group = spec.value_heads // spec.key_heads
        widths = [spec.key_dim, spec.key_dim, group * spec.value_dim, group * spec.value_dim]
        per_head = qkvz.view(1, -1, spec.key_heads, sum(widths))
        q, k, v, z = (_flat(part) for part in torch.split(per_head, widths, dim=-1))
        b, a = (_flat(part) for part in torch.split(ba.view(1, -1, spec.key_heads, 2 * group), [group, group], dim=-1))
        return torch.cat([q, k, v], dim=-1), z, b, a

    def _per_value_head(self, x: Tensor) -> Tensor:
        """``[1, q, Hk, D]`` -> ``[1, Hv, q, D]`` contiguous, each key head repeated for its value heads."""
        return _contiguous(torch.index_select(x, 2, self.key_head_of).transpose(1, 2))


def _l2_normed(x: Tensor) -> Tensor:
    wide = x.to(torch.float32)
    return wide * torch.rsqrt((wide * wide).sum(-1, keepdim=True) + L2_EPS)


def _contiguous(x: Tensor) -> Tensor:
    return x.clone(memory_format=torch.contiguous_format)


def _flat(x: Tensor) -> Tensor:
    """``[1, q, heads, width]`` (a strided slice) -> contiguous ``[1, q, heads * width]``."""
    return _contiguous(x).view(1, -1, x.shape[2] * x.shape[3])
