"""Any family's decoder as one stateful decode graph, built from its layout (``arch.layout``).

The interface is the engine contract of ``arch.decode_graph``: inputs ``input_ids [1, q]``
and ``position_ids [1, past + q]``; states ``keyCache`` / ``valueCache`` ``[attention layers,
1, kv_heads, S, head_dim]`` and, with short-conv layers, ``convState`` ``[conv layers, 1,
hidden, kernel - 1]``, updated in place; output logits ``[1, q, vocab]``. Module names are
canonical (``layers.3.self_attn.q_proj``); the family's weight-name map says where each
tensor is in its checkpoint (``arch.weights``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .blocks.attention import Attention
from .blocks.conv import ShortConv
from .blocks.mlp import GatedMlp
from .blocks.moe import SparseMoe
from .blocks.norm import RMSNorm
from .blocks.rotary import Frequencies, RotaryTables, rotary_frequencies
from .contract import ArchConfig
from .decode_graph import (
    CONV_STATE, KEY_CACHE, VALUE_CACHE, DecodeGraph, StateSpec, StepContext, causal_visible, check_context,
    kv_state_specs,
)
from .layout import Attention as AttentionSpec
from .layout import DecoderLayout, Layer, Mlp
from .safetensors_checkpoint import tie_head


class DecoderLayer(nn.Module):
    """A mixer and a feed-forward, each residual, with the norms the layout names."""

    def __init__(self, spec: Layer, norm_eps: float, norm_offset: float) -> None:
        super().__init__()
        self.is_attention = isinstance(spec.mixer, AttentionSpec)
        if self.is_attention:
            self.self_attn = Attention(spec.mixer)
        else:
            self.conv = ShortConv(spec.mixer)
        if isinstance(spec.ffn, Mlp):
            self.mlp = GatedMlp(spec.ffn)
        else:
            self.moe = SparseMoe(spec.ffn)
        for slot in spec.norms:
            setattr(self, slot, RMSNorm(spec.mixer.hidden, norm_eps, norm_offset))
        self.slots = frozenset(spec.norms)

    def forward(self, h: Tensor, ctx: StepContext, past: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``past`` is (keys, values) for attention, (window,) for conv; returns what to store."""
        x = self._norm("mixer_norm", h)
        if self.is_attention:
            mixed, keys, values = self.self_attn(x, ctx, past[0], past[1])
            written: tuple[Tensor, ...] = (keys, values)
        else:
            mixed, window = self.conv(x, past[0])
            written = (window,)
        h = h + self._norm("mixer_post_norm", mixed)
        ffn = self.mlp if hasattr(self, "mlp") else self.moe
        return h + self._norm("ffn_post_norm", ffn(self._norm("ffn_norm", h))), written

    def _norm(self, slot: str, x: Tensor) -> Tensor:
        return getattr(self, slot)(x) if slot in self.slots else x


class Decoder(DecodeGraph, nn.Module):
    """The decoder as one stateful decode graph. Build with :func:`build_decode_graph`."""

    def __init__(self, arch: ArchConfig, max_context: int, dtype: torch.dtype) -> None:
        super().__init__()
        layout = arch.layout()
        self.arch, self.layout, self.max_context = arch, layout, max_context
        self.tied = layout.tied
        self.embed_tokens = nn.Embedding(layout.vocab, layout.hidden)
        self.layers = nn.ModuleDict({
            str(i): DecoderLayer(spec, layout.norm.eps, layout.norm.offset) for i, spec in enumerate(layout.layers)
        })
        self.norm = RMSNorm(layout.hidden, layout.norm.eps, layout.norm.offset)
        self.lm_head = nn.Linear(layout.hidden, layout.vocab, bias=False)
        tie_head(self)
        self.to(dtype)
        self._keep_expert_bias_fp32()
        self.dtype = dtype
        # Built after the cast: RoPE frequencies stay fp32 in every build (not weights: never loaded).
        self.rotary = RotaryTables(_frequencies(arch, layout), max_context)
        self.windows = sorted({w for w in (a.window for a in layout.attention_layers) if w and w < max_context})

    def _keep_expert_bias_fp32(self) -> None:
        for moe in self.modules():
            if isinstance(moe, SparseMoe) and moe.expert_bias is not None:
                moe.expert_bias = nn.Buffer(moe.expert_bias.to(torch.float32))

    def state_specs(self) -> list[StateSpec]:
        layout = self.layout
        specs = []
        if layout.attention_layers:
            first = layout.attention_layers[0]
            specs += kv_state_specs(len(layout.attention_layers), first.kv_heads, first.head_dim)
        if layout.conv_layers:
            conv = layout.conv_layers[0]
            specs.append(StateSpec(CONV_STATE, (len(layout.conv_layers), 1, conv.hidden, conv.kernel - 1), "fixed"))
        return specs

    def embed(self, input_ids: Tensor) -> Tensor:
        h = self.embed_tokens(input_ids)
        scale = self.layout.embed_scale
        return h if scale is None else h * scale

    def head(self, h: Tensor) -> Tensor:
        logits = self.lm_head(self.norm(h))
        cap = self.layout.logit_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def run_layers(self, h: Tensor, ctx: StepContext, read: Mapping[str, Tensor]) -> tuple[Tensor, dict]:
        written: dict[str, list[Tensor]] = {KEY_CACHE: [], VALUE_CACHE: [], CONV_STATE: []}
        for layer in self.layers.values():
            if layer.is_attention:
                index = len(written[KEY_CACHE])
                h, (keys, values) = layer(h, ctx, (read[KEY_CACHE][index], read[VALUE_CACHE][index]))
                written[KEY_CACHE].append(keys)
                written[VALUE_CACHE].append(values)
            else:
                h, (window,) = layer(h, ctx, (read[CONV_STATE][len(written[CONV_STATE])],))
                written[CONV_STATE].append(window)
        return h, {name: rows for name, rows in written.items() if rows}

    def context(self, position_ids: Tensor, query_len: int) -> StepContext:
        positions, causal = causal_visible(position_ids, query_len)
        visible: dict[int | None, Tensor] = {None: causal}
        for window in self.windows:
            visible[window] = causal_visible(position_ids, query_len, window)[1]
        for spec in self.layout.attention_layers:  # a window as long as the context is no window
            visible.setdefault(spec.window, causal)
        # The compute dtype from a norm: norms are never quantized, the embedding may be.
        return StepContext(rotary=self.rotary(positions, self.norm.weight.dtype), visible=visible)


class KvDecoder(Decoder):
    """A decoder whose only states are the KV caches."""

    def forward(self, input_ids: Tensor, position_ids: Tensor, keyCache: Tensor, valueCache: Tensor) -> Tensor:
        return self.decode(input_ids, position_ids, {KEY_CACHE: keyCache, VALUE_CACHE: valueCache})


class ConvKvDecoder(Decoder):
    """A short-conv + attention hybrid: KV caches and the conv windows."""

    def forward(
        self, input_ids: Tensor, position_ids: Tensor, keyCache: Tensor, valueCache: Tensor, convState: Tensor
    ) -> Tensor:
        states = {KEY_CACHE: keyCache, VALUE_CACHE: valueCache, CONV_STATE: convState}
        return self.decode(input_ids, position_ids, states)


def _frequencies(arch: ArchConfig, layout: DecoderLayout) -> dict[str, Frequencies]:
    tables = {a.rotary.table: a.rotary.dims for a in layout.attention_layers if a.rotary is not None}
    if not tables:
        return {}
    from .hf_config import transformers_config

    return rotary_frequencies(transformers_config(arch.to_hf(), f"the {arch.family_tag} recipe"), tables)


def build_decode_graph(arch: ArchConfig, max_context: int, dtype: torch.dtype = torch.float32) -> Decoder:
    """The decode graph of a family's typed config.

    Weights are uninitialised; call ``arch.weights.load_weights``. Build under
    ``with torch.device("meta"):`` to skip allocating them before loading.
    """
    check_context(max_context)
    layout = arch.layout()
    if not layout.attention_layers:
        raise ConfigError(f"{arch.family_tag}: a decode graph needs at least one attention layer (the KV states)")
    kinds = {(a.kv_heads, a.head_dim) for a in layout.attention_layers}
    if len(kinds) > 1:
        raise ConfigError(f"{arch.family_tag}: attention layers differ in kv heads / head dim {sorted(kinds)}",
                          "the engine contract has one keyCache for every attention layer")
    graph = ConvKvDecoder if layout.conv_layers else KvDecoder
    return graph(arch, max_context, dtype)
