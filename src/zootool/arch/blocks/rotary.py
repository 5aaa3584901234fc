"""Rotary position embedding: frequencies by transformers' own RoPE functions, angles in the graph.

The inverse frequencies and the attention factor of every RoPE type transformers knows
(default, linear, llama3, yarn, longrope) come from ``transformers.modeling_rope_utils``,
so the graph turns heads exactly as the upstream model does. The graph computes each
position's angles in fp32 (``position * inv_freq``): no table grows with the context.
LongRoPE switches to its long factors once a sequence is past the original context, as
transformers does in its forward.

coremltools' fp16 pass drops explicit fp32 casts, and an fp16 angle at position 2000 is
off by a whole radian; :meth:`RotaryTables.use_tables` switches a graph that Core ML will
convert to fp32 cos/sin tables of ``max_context`` rows, looked up by position.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

DEFAULT_TABLE = "default"


class Frequencies(NamedTuple):
    """One rotary table's fp32 inverse frequencies ``[dims/2]`` and the factor on its cos/sin.

    LongRoPE has two sets: ``inv_freq`` up to ``switch_at`` tokens, ``long_inv_freq`` for a longer
    sequence (chosen per call by its last position, as transformers chooses per forward).
    """

    inv_freq: Tensor
    factor: float
    long_inv_freq: Tensor | None = None
    switch_at: int | None = None


def rotary_frequencies(hf_config: Any, tables: dict[str, int]) -> dict[str, Frequencies]:
    """The frequencies of each table a layout's layers read; ``tables`` maps it to the channels it turns.

    A table other than ``default`` is a transformers layer type with its own ``rope_parameters``
    (Gemma 3's sliding and full attention).
    """
    with torch.device("cpu"):  # real numbers even while the graph is built on the meta device
        return {table: _frequencies(hf_config, table, dims) for table, dims in tables.items()}


def _frequencies(hf_config: Any, table: str, dims: int) -> Frequencies:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    layer_type = None if table == DEFAULT_TABLE else table
    params = hf_config.rope_parameters if layer_type is None else hf_config.rope_parameters[layer_type]
    if params["rope_type"] == "default":
        exponents = torch.arange(0, dims, 2, dtype=torch.int64, device="cpu").to(torch.float32) / dims
        return Frequencies(1.0 / (float(params["rope_theta"]) ** exponents), 1.0)
    init = ROPE_INIT_FUNCTIONS[params["rope_type"]]
    extra = {"layer_type": layer_type} if layer_type is not None else {}
    inv_freq, factor = init(hf_config, "cpu", **extra)
    if params["rope_type"] != "longrope":
        return Frequencies(inv_freq.to("cpu", torch.float32), float(factor))
    switch_at = int(params["original_max_position_embeddings"])
    long_inv_freq, _ = init(hf_config, "cpu", seq_len=switch_at + 1, **extra)
    return Frequencies(inv_freq.to("cpu", torch.float32), float(factor), long_inv_freq.to("cpu", torch.float32),
                       switch_at)


class RotaryTables(nn.Module):
    """Each rotary table's cos and sin for a call's positions: ``[1, q, 1, dims]`` in the compute dtype."""

    def __init__(self, frequencies: dict[str, Frequencies], max_context: int) -> None:
        super().__init__()
        self.names = sorted(frequencies)
        self.spec = {name: f._replace(inv_freq=None, long_inv_freq=None) for name, f in frequencies.items()}
        self.max_context = max_context
        for name in self.names:
            self.register_buffer(f"inv_freq_{name}", frequencies[name].inv_freq, persistent=False)
            if frequencies[name].long_inv_freq is not None:
                self.register_buffer(f"long_inv_freq_{name}", frequencies[name].long_inv_freq, persistent=False)
        self.tabled = False

    def use_tables(self) -> None:
        """Look cos/sin up in fp32 tables instead of computing angles (for Core ML; see the module doc)."""
        every = torch.arange(self.max_context, dtype=torch.float32, device="cpu")
        for name in self.names:
            for prefix in ("", "long_") if self.spec[name].switch_at else ("",):
                cos, sin = self._angles(every, getattr(self, f"{prefix}inv_freq_{name}"), self.spec[name].factor)
                self.register_buffer(f"{prefix}cos_{name}", cos, persistent=False)
                self.register_buffer(f"{prefix}sin_{name}", sin, persistent=False)
        self.tabled = True

    def forward(self, positions: Tensor, dtype: torch.dtype) -> dict[str, tuple[Tensor, Tensor]]:
        flat = positions.reshape(-1)
        return {name: self._one(flat, name, dtype) for name in self.names}

    def _one(self, flat: Tensor, name: str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        cos, sin = self._cos_sin(flat, name, "")
        switch_at = self.spec[name].switch_at
        if switch_at is not None:
            # LongRoPE: the long set once the sequence (its last position + 1) is past the original context.
            long = (flat.max() >= switch_at).to(torch.float32)
            long_cos, long_sin = self._cos_sin(flat, name, "long_")
            cos, sin = cos + long * (long_cos - cos), sin + long * (long_sin - sin)
        dims = cos.shape[-1]
        return cos.view(1, -1, 1, dims).to(dtype), sin.view(1, -1, 1, dims).to(dtype)

    def _cos_sin(self, flat: Tensor, name: str, prefix: str) -> tuple[Tensor, Tensor]:
        if self.tabled:
            return (torch.index_select(getattr(self, f"{prefix}cos_{name}"), 0, flat),
                    torch.index_select(getattr(self, f"{prefix}sin_{name}"), 0, flat))
        return self._angles(flat.to(torch.float32), getattr(self, f"{prefix}inv_freq_{name}"), self.spec[name].factor)

    @staticmethod
    def _angles(positions: Tensor, inv_freq: Tensor, factor: float) -> tuple[Tensor, Tensor]:
        angles = positions.unsqueeze(-1) * inv_freq
        angles = torch.cat([angles, angles], dim=-1)
        if factor == 1.0:
            return angles.cos(), angles.sin()
        return angles.cos() * factor, angles.sin() * factor


def rotate(x: Tensor, cos: Tensor, sin: Tensor, dims: int, head_dim: int) -> Tensor:
    """RoPE on the first ``dims`` channels of each head of ``x [1, q, heads, head_dim]``.

    Sizes are Python ints: a traced ``x.shape[-1] // 2`` trips coremltools' jit frontend.
    """
    half = dims // 2
    turned = x if dims == head_dim else x[..., :dims]
    turned = turned * cos + torch.cat([-turned[..., half:], turned[..., :half]], dim=-1) * sin
    return turned if dims == head_dim else torch.cat([turned, x[..., dims:]], dim=-1)


def rope_composite(dims: int, head_dim: int) -> nn.Module:
    """The Core AI converter's ``rope`` composite for ``dims`` of ``head_dim`` channels (partial rotary too).

    It is given this graph's cos/sin (:func:`rotate_by`), so every RoPE type's frequencies and
    attention factor stay transformers' own; it only does the turning.
    """
    from coreai_torch.composite_ops import RoPE

    return RoPE(dims=dims if dims < head_dim else None)


def rotate_by(rope: nn.Module, x: Tensor, cos: Tensor, sin: Tensor, dims: int) -> Tensor:
    """:func:`rotate` through the composite: it takes the first half of the (duplicated) cos/sin."""
    half = dims // 2
    return rope(x, cos=cos[..., :half], sin=sin[..., :half])

