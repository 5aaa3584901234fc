"""What every family's decode-step module shares: state naming, I/O, the cached attention core.

A decode chunk is layers ``[start, stop)`` of a decoder as one functional step: token (or
hidden state) and position in, logits (or hidden state) out, every carried state an
explicit input and output. Families subclass ``DecodeChunkIO`` and give ``state_specs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError


class StateSpec(NamedTuple):
    """One carried state tensor of a decode chunk."""

    name: str
    shape: tuple[int, ...]


class StepContext(NamedTuple):
    """Per-step tensors shared by every attention layer of a chunk."""

    cos: Tensor  # [1, 1, head_dim]
    sin: Tensor
    write: Tensor  # bool [1, 1, max_context, 1]: the cache row of this position
    visible: Tensor  # bool [1, 1, 1, max_context]: rows this position may attend to


class DecodeChunkIO:
    """Names, zero states and example inputs, from ``state_specs()`` and the chunk's place.

    Call ``_place`` first in ``__init__``; subclasses give ``dtype`` and ``state_specs()``.
    """

    def _place(self, dims, max_context: int, layers: range) -> None:
        """Record which layers this chunk holds and whether it embeds (first) or projects (last)."""
        if not 0 <= layers.start < layers.stop <= dims.num_layers:
            raise ConfigError(f"layer range {layers.start}..{layers.stop} is outside 0..{dims.num_layers}")
        self.dims, self.max_context, self.layer_range = dims, max_context, layers
        self.is_first, self.is_last = layers.start == 0, layers.stop == dims.num_layers

    def input_names(self) -> list[str]:
        first = "input_ids" if self.is_first else "hidden_states"
        return [first, "position", *(spec.name for spec in self.state_specs())]

    def output_names(self) -> list[str]:
        first = "logits" if self.is_last else "hidden_states"
        return [first, *(f"{spec.name}_out" for spec in self.state_specs())]

    def initial_states(self) -> tuple[Tensor, ...]:
        """Zero states for position 0 (zeros are also transformers' empty conv window)."""
        return tuple(torch.zeros(spec.shape, dtype=self.dtype) for spec in self.state_specs())

    def example_inputs(self) -> tuple[Tensor, ...]:
        """Inputs of the right shapes and dtypes for ``torch.export.export``."""
        if self.is_first:
            first = torch.zeros(1, 1, dtype=torch.int32)
        else:
            first = torch.zeros(1, 1, self.dims.hidden_size, dtype=self.dtype)
        return (first, torch.zeros(1, dtype=torch.int32), *self.initial_states())


def cache_rows(position: Tensor, max_context: int) -> tuple[Tensor, Tensor]:
    """(rows [max_context] int32, write mask [1, 1, max_context, 1]) for this position."""
    rows = torch.arange(max_context, dtype=torch.int32, device=position.device)
    return rows, (rows == position).view(1, 1, max_context, 1)


def cached_attention(
    q: Tensor, k: Tensor, v: Tensor, ctx: StepContext, keys: Tensor, values: Tensor, heads: tuple[int, int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """GQA over a fixed-length cache: write this step's K/V at ``ctx.write``, attend to ``ctx.visible``.

    ``q`` is ``[1, heads, head_dim]``, ``k`` ``[1, kv_heads, head_dim]`` (both rotated),
    ``v`` ``[1, kv_heads, 1, head_dim]``; returns ``(out [1, 1, heads*head_dim], keys, values)``.
    ``heads`` is ``(heads, kv_heads, head_dim)`` as Python ints: shapes read off traced tensors
    trip coremltools' jit frontend.
    """
    heads, kv_heads, head_dim = heads
    keys = torch.where(ctx.write, k.unsqueeze(2), keys)
    values = torch.where(ctx.write, v, values)
    # Query heads grouped under their KV head: no repeated K/V is materialised.
    grouped = q.view(1, kv_heads, heads // kv_heads, head_dim)
    scores = torch.matmul(grouped, keys.transpose(-1, -2)) * head_dim**-0.5
    # fp16's lowest finite value masks in every dtype; a float32 minimum would become -inf in fp16.
    scores = torch.where(ctx.visible, scores, torch.finfo(torch.float16).min)
    probs = torch.softmax(scores.to(torch.float32), dim=-1).to(values.dtype)
    return torch.matmul(probs, values).reshape(1, 1, heads * head_dim), keys, values


def split_layers(num_layers: int, chunks: int) -> list[range]:
    """Contiguous layer ranges, as even as possible, earlier chunks taking the remainder."""
    if not 1 <= chunks <= num_layers:
        raise ConfigError(f"cannot split {num_layers} layers into {chunks} chunks", "use 1..num_layers chunks")
    size, extra = divmod(num_layers, chunks)
    bounds = [0]
    for index in range(chunks):
        bounds.append(bounds[-1] + size + (1 if index < extra else 0))
    return [range(a, b) for a, b in pairwise(bounds)]


@torch.no_grad()
def decode_tokens(chunks: Sequence[torch.nn.Module], token_ids: Sequence[int]) -> Tensor:
    """Run ``token_ids`` one step at a time from empty state; logits ``[len, vocab]``."""
    states = [chunk.initial_states() for chunk in chunks]
    rows = []
    for position, token in enumerate(token_ids):
        if position >= chunks[0].max_context:
            raise ConfigError(f"{len(token_ids)} tokens do not fit max_context {chunks[0].max_context}")
        x: Tensor = torch.tensor([[token]], dtype=torch.int32)
        pos = torch.tensor([position], dtype=torch.int32)
        for index, chunk in enumerate(chunks):
            x, *updated = chunk(x, pos, *states[index])
            states[index] = tuple(updated)
        rows.append(x[0, 0])
    return torch.stack(rows)
