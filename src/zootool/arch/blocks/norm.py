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
        self.composite: nn.Module | None = None

    def use_composite(self) -> bool:
        """Compute as the Core AI converter's ``rms_norm`` composite (fp32 inside, as here); whether it could.

        Gemma's ``1 + w`` stays decomposed: the composite multiplies by its scale operand, and
        ``1 + w`` in fp16 would round the checkpoint's small ``w`` away.
        """
        if self.offset:
            return False
        from coreai_torch.composite_ops import RMSNormImpl

        self.composite = RMSNormImpl(eps=self.eps)
        return True

    def forward(self, x: Tensor) -> Tensor:
        if self.composite is not None:
            # fp32 operands: the composite then normalizes and scales in fp32 and casts once, as below
            # (given fp16 ones the Linux runtime's norm lost precision: SmolLM2's logit error 0.12 -> 0.17).
            return self.composite(x.to(torch.float32), self.weight.to(torch.float32)).to(x.dtype)
        wide = x.to(torch.float32)
        scale = wide.abs().amax(-1, keepdim=True).clamp_min(1.0)
        scaled = wide / scale
        normed = scaled * torch.rsqrt(scaled.pow(2).mean(-1, keepdim=True) + self.eps / scale.pow(2))
        normed = normed.to(x.dtype)
        # (offset + w) * y written as w * y + offset * y: a converter may fold `offset + w` into a new
        # constant, and coremltools does, leaving no constant of the checkpoint's own w to read back.
        return self.weight * normed + self.offset * normed if self.offset else self.weight * normed
