"""LFM2's short conv mixer (``layout.ShortConv``): gated depthwise causal conv with a state window."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..decode_graph import StepContext
from ..layout import ShortConv as ShortConvSpec


class ShortConv(nn.Module):
    """Gated depthwise causal conv; the state is the last ``kernel - 1`` gated inputs."""

    def __init__(self, spec: ShortConvSpec) -> None:
        super().__init__()
        h = spec.hidden
        self.in_proj = nn.Linear(h, 3 * h, bias=spec.bias)
        self.conv = nn.Conv1d(h, h, spec.kernel, groups=h, bias=spec.bias)
        self.out_proj = nn.Linear(h, h, bias=spec.bias)

    def forward(self, x: Tensor, ctx: StepContext, window: Tensor) -> tuple[Tensor, tuple[Tensor]]:
        """``x [1, q, H]``, ``window [1, H, kernel-1]`` -> (output ``[1, q, H]``, (next window,))."""
        b, c, v = self.in_proj(x).chunk(3, dim=-1)
        mixed, window = causal_conv(self.conv, window, (b * v).transpose(1, 2))
        return self.out_proj(c * mixed.transpose(1, 2)), (window,)


def causal_conv(conv: nn.Conv1d, window: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Depthwise causal conv of ``x [1, C, q]`` after the ``window [1, C, kernel - 1]`` of earlier inputs.

    Returns (output ``[1, C, q]``, the next window). Written as shifted multiply-adds: the
    converters keep their shapes right with a dynamic ``q``.
    """
    query_len, kernel = x.shape[2], conv.weight.shape[-1]
    full = torch.cat([window, x], dim=-1)  # [1, C, kernel - 1 + q]
    taps = conv.weight.squeeze(1)  # [C, kernel]
    mixed = full[:, :, 0:query_len] * taps[:, 0:1]
    for tap in range(1, kernel):
        mixed = mixed + full[:, :, tap : tap + query_len] * taps[:, tap : tap + 1]
    if conv.bias is not None:
        mixed = mixed + conv.bias.unsqueeze(-1)
    return mixed, full[:, :, query_len:]
