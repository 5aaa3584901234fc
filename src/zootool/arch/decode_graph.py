"""The decode graph every family shares: the engine contract's inputs, states and causal mask.

A decode graph is the whole decoder as one function, the shape Apple's LLM engines load:

* inputs ``input_ids`` int32 ``[1, q]`` and ``position_ids`` int32 ``[1, past + q]``
  holding ``0..past+q-1``; the graph takes ``past = len(position_ids) - len(input_ids)``
  and builds its own causal mask (there is no mask input);
* output ``logits`` ``[1, q, vocab]`` (fp16 once exported);
* KV caches as in-place states ``keyCache`` / ``valueCache`` ``[attention_layers, 1,
  kv_heads, S, head_dim]`` whose ``S`` grows with the context; hybrids add fixed-shape
  states, one row per layer that keeps one: LFM2's ``convState`` ``[conv_layers, 1, hidden,
  kernel - 1]``, the recurrent hybrids' ``convStates`` and ``recurrentStates`` (the engines
  take 2 to 4 states, at least 2 of them growing).

Every state is read once, before anything is written (the Core AI converter cannot read
a state it already updated in the same call), and written once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError
from .layout import CONV_STATE, CONV_STATES, GROWING, KEY_CACHE, RECURRENT_STATES, VALUE_CACHE  # noqa: F401

INPUT_NAMES = ("input_ids", "position_ids")
OUTPUT_NAMES = ("logits",)
SEQUENCE_AXIS = 3  # of a KV cache [layers, 1, kv_heads, S, head_dim]
# Example sizes for torch.export: distinct and >= 2, so no dynamic dim is specialised or unified.
EXAMPLE_QUERY, EXAMPLE_CONTEXT, EXAMPLE_CAPACITY = 3, 5, 8


class StateSpec(NamedTuple):
    """One state of a decode graph; ``GROWING`` marks the axis that follows the context."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "kv_cache" (growing, truncatable) or "fixed" (reset on rewind), as LanguageBundle says

    @property
    def growing(self) -> bool:
        return GROWING in self.shape

    def sized(self, capacity: int) -> tuple[int, ...]:
        """The concrete shape for a context of ``capacity`` tokens."""
        return tuple(capacity if size == GROWING else size for size in self.shape)


class StepContext(NamedTuple):
    """What every layer of one call shares."""

    # rotary table -> (cos, sin) [1, q, 1, dims]: broadcast over the heads of [1, q, heads, head_dim]
    rotary: dict[str, tuple[Tensor, Tensor]]
    # sliding window (None: full causal) -> bool [1, 1, q, past + q]: the cached rows each new token sees
    visible: dict[int | None, Tensor]


def causal_visible(position_ids: Tensor, query_len: int, sliding_window: int | None = None) -> tuple[Tensor, Tensor]:
    """``(positions [1, q], visible [1, 1, q, past+q])`` from the contract's ``position_ids``.

    A sliding window compares the keys with each query's first visible position, worked out on
    the ``[1, q]`` positions: the Core AI converter gets the shape of arithmetic on the broadcast
    ``[1, 1, q, past+q]`` grid wrong (coreai-torch 0.4.3: ``keys > queries - window`` converts,
    then fails at run time with "Cannot broadcast shapes [1, 1, 1, q*T] and [1, 1, q, T]").
    """
    total = position_ids.shape[1]
    # Gathered, not sliced: the converter slices a dynamic start with a static length wrongly.
    positions = torch.index_select(position_ids, 1, torch.arange(total - query_len, total, dtype=torch.int32))
    keys = position_ids.view(1, 1, 1, -1)
    queries = positions.view(1, 1, -1, 1)
    visible = keys <= queries
    if sliding_window is not None:
        first = (positions - (sliding_window - 1)).view(1, 1, -1, 1)
        visible = visible & (keys >= first)
    return positions, visible


def grouped_attention(
    query: Tensor, keys: Tensor, values: Tensor, visible: Tensor, heads: tuple[int, int, int],
    scale: float | None = None,
) -> Tensor:
    """GQA: ``query [1, q, H, D]`` over ``keys``/``values [1, KV, past+q, D]``; returns ``[1, q, H*D]``.

    ``visible`` is the call's bool mask ``[1, 1, q, past + q]``; ``scale`` multiplies the
    scores (default ``D ** -0.5``).

    ``heads`` is ``(heads, kv_heads, head_dim)`` as Python ints: shapes read off traced
    tensors trip coremltools' jit frontend. Only contiguous tensors are reshaped: reshaping
    a transposed one makes torch.export guard on ``q != 1`` and refuse a dynamic ``q``.
    """
    heads, kv_heads, head_dim = heads
    group = heads // kv_heads
    # Query heads grouped under their KV head: no repeated K/V is materialised. Plain 3-D bmm
    # on contiguous operands: a broadcasting matmul reshapes internally and guards too.
    grouped = query.view(1, -1, kv_heads, group, head_dim).permute(0, 2, 3, 1, 4).clone(memory_format=torch.contiguous_format)
    grouped = grouped.view(kv_heads, -1, head_dim)  # [KV, group * q, D]
    keys, values = keys.view(kv_heads, -1, head_dim), values.view(kv_heads, -1, head_dim)
    scale = head_dim**-0.5 if scale is None else scale
    scores = torch.bmm(grouped, keys.transpose(1, 2)) * scale  # [KV, group * q, past + q]
    # Rows are (group, q): the mask repeats per group. No view names a symbolic size: the
    # converter resolves such sizes wrongly when q is static and the context dynamic.
    mask = visible[0].repeat(group, 1, 1).flatten(0, 1)
    # fp16's lowest finite value masks in every dtype; a float32 minimum would become -inf in fp16.
    scores = torch.where(mask, scores, torch.finfo(torch.float16).min)
    probs = torch.softmax(scores.to(torch.float32), dim=-1).to(values.dtype)
    out = torch.bmm(probs, values).view(kv_heads, group, -1, head_dim)
    return out.permute(2, 0, 1, 3).clone(memory_format=torch.contiguous_format).view(1, -1, heads * head_dim)


def read_states(states: Mapping[str, Tensor], specs: Sequence[StateSpec], past: int) -> dict[str, Tensor]:
    """What the call may read of each state: the first ``past`` rows of a growing one, a fixed one whole.

    Rows are gathered, not sliced: a view of the first ``past`` rows makes torch.export
    guard on its strides (``past != 1``) and refuse the dynamic context.
    """
    rows = torch.arange(past, dtype=torch.int32)
    return {
        spec.name: torch.index_select(states[spec.name], SEQUENCE_AXIS, rows) if spec.growing else states[spec.name]
        for spec in specs
    }


def write_states(
    states: Mapping[str, Tensor], written: Mapping[str, list[Tensor]], past: int, total: int, slices: bool = False
) -> None:
    """Store each state's new per-layer rows in place: one write per state.

    The two converters recognise different forms: Core AI wants ``narrow`` by the exact
    length (a ``past:total`` slice gets a size torch.export writes as ``max(...)``, which
    does not convert); coremltools' jit frontend matches only slice assignments.
    """
    for name, rows in written.items():
        stacked = torch.stack(rows)
        if name not in (KEY_CACHE, VALUE_CACHE):
            states[name].copy_(stacked)
        elif slices:
            states[name][:, :, :, past:total] = stacked
        else:
            states[name].narrow(SEQUENCE_AXIS, past, total - past).copy_(stacked)


class DecodeGraph:
    """Mixin for a family's ``nn.Module``: the contract's I/O around the family's layers.

    A family sets ``dims``, ``max_context``, ``dtype`` and gives ``state_specs()``,
    ``embed(input_ids)``, ``head(h)``, ``context(position_ids, q)`` and
    ``run_layers(h, ctx, read) -> (h, written)``.
    """

    input_names = list(INPUT_NAMES)
    output_names = list(OUTPUT_NAMES)
    slice_writes = False  # see write_states: the Core ML wrapper sets it

    def state_names(self) -> list[str]:
        return [spec.name for spec in self.state_specs()]

    def decode(
        self, input_ids: Tensor, position_ids: Tensor, states: Mapping[str, Tensor], extra_mask: Tensor | None = None
    ) -> Tensor:
        """One engine call: logits ``[1, q, vocab]``; ``states`` are updated in place.

        ``extra_mask`` is an additive ``[1, 1, q|1, past + q]`` mask (Core ML's ``causalMask``):
        rows it sets below -1 are hidden as well as the causally invisible ones.
        """
        query_len, total = input_ids.shape[1], position_ids.shape[1]
        past = total - query_len
        read = read_states(states, self.state_specs(), past)
        ctx = self.context(position_ids, query_len)
        if extra_mask is not None:
            ctx = ctx._replace(visible={key: mask & (extra_mask > -1.0) for key, mask in ctx.visible.items()})
        h, written = self.run_layers(self.embed(input_ids), ctx, read)
        write_states(states, written, past, total, self.slice_writes)
        return self.head(h)

    def initial_states(self, capacity: int | None = None, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """Zero states for a context of ``capacity`` tokens (default ``max_context``)."""
        size = capacity or self.max_context
        return {
            spec.name: torch.zeros(spec.sized(size), dtype=dtype or self.dtype) for spec in self.state_specs()
        }

    def example_inputs(self, query_len: int | None) -> tuple[Tensor, ...]:
        """Arguments for ``torch.export``: ``query_len`` fixes ``q``, ``None`` leaves it dynamic."""
        q = query_len or EXAMPLE_QUERY
        context = max(EXAMPLE_CONTEXT, q + 2)
        ids = torch.zeros(1, q, dtype=torch.int32)
        positions = torch.arange(context, dtype=torch.int32).view(1, context)
        states = self.initial_states(max(EXAMPLE_CAPACITY, context + 1))
        return (ids, positions, *(states[name] for name in self.state_names()))

    def dynamic_shapes(self, query_len: int | None) -> tuple:
        """``torch.export`` dims matching :meth:`example_inputs`."""
        dim = torch.export.Dim
        context = dim("context", min=1, max=self.max_context)
        capacity = dim("capacity", min=2, max=max(self.max_context, 3))
        query = None if query_len else {1: dim("query", min=1, max=self.max_context)}
        states = tuple({SEQUENCE_AXIS: capacity} if spec.growing else None for spec in self.state_specs())
        return (query, {1: context}, *states)


def check_context(max_context: int) -> None:
    if max_context < 1:
        raise ConfigError(f"max_context must be positive, got {max_context}")


@torch.no_grad()
def decode_tokens(graph: torch.nn.Module, token_ids: Sequence[int], step: int = 1) -> Tensor:
    """Logits ``[len, vocab]`` of feeding ``token_ids`` ``step`` at a time from empty state (torch)."""
    if len(token_ids) > graph.max_context:
        raise ConfigError(f"{len(token_ids)} tokens do not fit max_context {graph.max_context}")
    states = graph.initial_states()
    rows = []
    for start in range(0, len(token_ids), step):
        chunk = torch.tensor([token_ids[start : start + step]], dtype=torch.int32)
        positions = torch.arange(start + chunk.shape[1], dtype=torch.int32).view(1, -1)
        rows.append(graph(chunk, positions, *(states[name] for name in graph.state_names()))[0])
    return torch.cat(rows)
