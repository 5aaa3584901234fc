"""Gated feed-forward: ``down(act(gate(x)) * up(x))``, SwiGLU or GeGLU (``layout.Mlp``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layout import Mlp


def activation(name: str, x: Tensor) -> Tensor:
    """The gate's nonlinearity: ``silu`` (SwiGLU) or tanh-approximated ``gelu_tanh`` (GeGLU)."""
    return F.silu(x) if name == "silu" else F.gelu(x, approximate="tanh")


class GatedMlp(nn.Module):
    def __init__(self, spec: Mlp) -> None:
        super().__init__()
        h, i, bias = spec.hidden, spec.intermediate, spec.bias
        self.gate_proj = nn.Linear(h, i, bias=bias)
        self.up_proj = nn.Linear(h, i, bias=bias)
        self.down_proj = nn.Linear(i, h, bias=bias)
        self.act = spec.activation

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(activation(self.act, self.gate_proj(x)) * self.up_proj(x))
