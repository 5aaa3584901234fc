"""Seeded random values for a synthetic checkpoint, produced one bounded slice at a time.

Values follow transformers' initialisation at the recipe's std (every matrix N(0, std),
biases zero, the padding token's embedding row zero), except that norm weights and the
expert bias are drawn around their defaults (1 and 0): at exactly 1 and 0 a test could not
tell a dropped norm or bias from a loaded one. Every slice has its own seed, derived from
(seed, tensor name, slice number), so the bytes depend neither on how the checkpoint is
sharded nor on the order in which tensors are written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from math import prod
from typing import Any

from ...arch.base import TensorSpec

SLICE_ELEMENTS = 1 << 18  # 1 MB of fp32 working memory per slice
NORM_JITTER = 0.1
EXPERT_BIAS_STD = 0.05


@dataclass(frozen=True)
class Init:
    """How a tensor starts: ``mean + std * N(0, 1)``, with one row set to zero if given."""

    mean: float
    std: float
    zero_row: int | None = None


def init_for(spec: TensorSpec, std: float, pad_token_id: int | None) -> Init:
    """The initial distribution of ``spec`` for a checkpoint initialised at ``std``."""
    if spec.group == "norm":
        return Init(1.0, NORM_JITTER)
    if spec.name.endswith("expert_bias"):
        return Init(0.0, EXPERT_BIAS_STD)
    if spec.name.endswith(".bias"):
        return Init(0.0, 0.0)
    if spec.group == "embedding":
        return Init(0.0, std, zero_row=pad_token_id)
    return Init(0.0, std)


def slice_tasks(spec: TensorSpec, init: Init, seed: int, dtype: str) -> Iterator[Callable[[], Any]]:
    """Tasks giving the flattened values of ``spec`` in order: 1-D ``dtype`` tensors of at most SLICE_ELEMENTS.

    Each task is independent of the others, so they may run on several threads.
    """
    total = prod(spec.shape)
    row = spec.shape[-1] if len(spec.shape) > 1 else total
    zeros = None if init.zero_row is None else (init.zero_row * row, (init.zero_row + 1) * row)
    for number, start in enumerate(range(0, total, SLICE_ELEMENTS)):
        count = min(SLICE_ELEMENTS, total - start)
        local = None if zeros is None else (max(zeros[0] - start, 0), max(zeros[1] - start, 0))
        yield partial(_slice, count, init, slice_seed(seed, spec.name, number), local, dtype)


def slice_seed(seed: int, name: str, number: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{name}\0{number}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _slice(count: int, init: Init, seed: int, zeros: tuple[int, int] | None, dtype: str) -> Any:
    import torch

    if init.std == 0:
        values = torch.full((count,), init.mean)
    else:
        values = torch.empty(count).normal_(init.mean, init.std, generator=torch.Generator().manual_seed(seed))
    if zeros is not None:
        values[zeros[0] : zeros[1]] = 0.0
    return values.to(getattr(torch, dtype))
