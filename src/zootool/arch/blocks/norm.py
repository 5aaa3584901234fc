"""The RMS norm every family uses, safe when a converter computes the whole graph in fp16."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """RMS norm over the last axis that cannot overflow in fp16.

    ``x / sqrt(mean(x^2) + eps)`` is computed as ``y * rsqrt(mean(y^2) + eps / m^2)``
    with ``y = x / m`` and ``m = max(max|x|, 1)``: the same value, but the squares stay
    at most 1 (outlier activations of a few thousand square past fp16's 65504).
    ``offset`` is Gemma's: it stores ``w`` and scales by ``1 + w``.
    """

    def __init__(self, dim: int, eps: float, offset: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.offset = eps, offset

    def forward(self, x: Tensor) -> Tensor:
        wide = x.to(torch.float32)
        scale = wide.abs().amax(-1, keepdim=True).clamp_min(1.0)
        scaled = wide / scale
        normed = scaled * torch.rsqrt(scaled.pow(2).mean(-1, keepdim=True) + self.eps / scale.pow(2))
        normed = normed.to(x.dtype)
        # (offset + w) * y written as w * y + offset * y: a converter may fold `offset + w` into a new
        # constant, and coremltools does, leaving no constant of the checkpoint's own w to read back.
        return self.weight * normed + self.offset * normed if self.offset else self.weight * normed
