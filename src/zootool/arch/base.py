"""What every architecture family tells the resolver: its tensors, by group."""

from __future__ import annotations

import math
from typing import NamedTuple

# Tensor groups a quant scheme assigns a storage format to. Every tensor of every
# family belongs to exactly one of them, so a scheme can be checked for completeness.
TENSOR_GROUPS: tuple[str, ...] = (
    "embedding",  # token embedding table
    "lm-head",  # output projection (absent when tied and stored once)
    "attention",  # q/k/v/out projections
    "router",  # MoE router gate
    "norm",  # every norm weight
    "conv",  # depthwise short-conv filters
    "linear",  # other dense linears (conv in/out projections, dense MLPs)
    "experts",  # stacked MoE expert weights
    "buffer",  # non-parameter tensors stored in the bundle (e.g. expert bias)
)


class TensorSpec(NamedTuple):
    """One stored tensor: its checkpoint name, group and shape."""

    name: str
    group: str
    shape: tuple[int, ...]
    parameter: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)
