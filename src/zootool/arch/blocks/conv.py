"""LFM2's short conv mixer (``layout.ShortConv``): gated depthwise causal conv with a state window."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layout import ShortConv as ShortConvSpec


class ShortConv(nn.Module):
    """Gated depthwise causal conv; the state is the last ``kernel - 1`` gated inputs."""

    def __init__(self, spec: ShortConvSpec) -> None:
        super().__init__()
        h = spec.hidden
        self.kernel = spec.kernel
        self.in_proj = nn.Linear(h, 3 * h, bias=spec.bias)
        self.conv = nn.Conv1d(h, h, spec.kernel, groups=h, bias=spec.bias)
        self.out_proj = nn.Linear(h, h, bias=spec.bias)

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
