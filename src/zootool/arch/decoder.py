"""Any family's decoder as one stateful decode graph, built from its layout (``arch.layout``).

The interface is the engine contract of ``arch.decode_graph``: inputs ``input_ids [1, q]``
and ``position_ids [1, past + q]``; states ``keyCache`` / ``valueCache`` ``[attention layers,
1, kv_heads, S, head_dim]`` and the fixed states of the other mixers, one row per layer
(short conv: ``convState``; gated delta net: ``convStates`` and ``recurrentStates``), updated
in place; output logits ``[1, q, vocab]``. Module names are canonical
(``layers.3.self_attn.q_proj``); the family's weight-name map says where each tensor is in
its checkpoint (``arch.weights``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .blocks.attention import Attention
from .blocks.conv import ShortConv
from .blocks.delta import GatedDeltaNet
from .blocks.mlp import GatedMlp
from .blocks.moe import SparseMoe
from .blocks.norm import RMSNorm
from .blocks.rotary import Frequencies, RotaryTables, rotary_frequencies
from .contract import ArchConfig
from .decode_graph import (
    CONV_STATE, CONV_STATES, GROWING, KEY_CACHE, RECURRENT_STATES, VALUE_CACHE, DecodeGraph, StateSpec, StepContext,
    causal_visible, check_context,
)
from .layout import Attention as AttentionSpec
from .layout import DecoderLayout, Layer, Mlp
from .layout import GatedDeltaNet as GatedDeltaNetSpec
from .layout import ShortConv as ShortConvSpec
from .safetensors_checkpoint import tie_head

# The torch block of each mixer spec.
MIXERS = {AttentionSpec: Attention, ShortConvSpec: ShortConv, GatedDeltaNetSpec: GatedDeltaNet}


class DecoderLayer(nn.Module):
    """A mixer and a feed-forward, each residual, with the norms the layout names."""

    def __init__(self, spec: Layer, norm_eps: float, norm_offset: float) -> None:
        super().__init__()
        self.mixer_slot = spec.mixer.slot  # self_attn, conv, linear_attn: the canonical tensor names
        self.state_names = tuple(spec.mixer.state_rows())  # the states it reads and writes, in this order
        setattr(self, self.mixer_slot, MIXERS[type(spec.mixer)](spec.mixer))
        if isinstance(spec.ffn, Mlp):
            self.mlp = GatedMlp(spec.ffn)
        else:
            self.moe = SparseMoe(spec.ffn)
        for slot in spec.norms:
            setattr(self, slot, RMSNorm(spec.mixer.hidden, norm_eps, norm_offset))
        self.slots = frozenset(spec.norms)

    def forward(self, h: Tensor, ctx: StepContext, past: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``past`` holds this layer's row of each of its states; returns what to store in each."""
        mixed, written = getattr(self, self.mixer_slot)(self._norm("mixer_norm", h), ctx, *past)
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
        self.composites: list[str] = []
        # Built after the cast: RoPE frequencies stay fp32 in every build (not weights: never loaded).
        self.rotary = RotaryTables(_frequencies(arch, layout), max_context)
        self.windows = sorted({w for w in (a.window for a in layout.attention_layers) if w and w < max_context})

    def use_composites(self) -> list[str]:
        """Compute norms and RoPE as the Core AI converter's composites (``arch.composites``), where they fit.

        For a Core AI export only: the torch graph stays decomposed otherwise. Returns the composite
        ops now in use, for the exporter to externalize.
        """
        modules = list(self.modules())  # listed first: using a composite adds a submodule
        used = {"rms_norm": [m.use_composite() for m in modules if isinstance(m, RMSNorm)],
                "rope": [m.use_composite() for m in modules if isinstance(m, Attention)]}
        self.composites = [name for name, calls in used.items() if any(calls)]
        return self.composites

    def _keep_expert_bias_fp32(self) -> None:
        for moe in self.modules():
            if isinstance(moe, SparseMoe) and moe.expert_bias is not None:
                moe.expert_bias = nn.Buffer(moe.expert_bias.to(torch.float32))

    def state_specs(self) -> list[StateSpec]:
        """One state per name the layers use, their rows stacked on a first axis (KV caches first)."""
        rows = self.layout.state_rows()
        return [StateSpec(name, (len(shapes), *shapes[0]), "kv_cache" if GROWING in shapes[0] else "fixed")
                for name, shapes in sorted(rows.items(), key=lambda item: STATE_ORDER.index(item[0]))]

    def embed(self, input_ids: Tensor) -> Tensor:
        h = self.embed_tokens(input_ids)
        scale = self.layout.embed_scale
        return h if scale is None else h * scale

    def head(self, h: Tensor) -> Tensor:
        logits = self.lm_head(self.norm(h))
        cap = self.layout.logit_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def run_layers(self, h: Tensor, ctx: StepContext, read: Mapping[str, Tensor]) -> tuple[Tensor, dict]:
        written: dict[str, list[Tensor]] = {name: [] for name in read}
        for layer in self.layers.values():
            past = tuple(read[name][len(written[name])] for name in layer.state_names)
            h, rows = layer(h, ctx, past)
            for name, row in zip(layer.state_names, rows, strict=True):
                written[name].append(row)
        return h, written

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


class RecurrentKvDecoder(Decoder):
    """A recurrent hybrid (gated delta net): KV caches, the conv windows and the recurrent states."""

    def forward(
        self, input_ids: Tensor, position_ids: Tensor, keyCache: Tensor, valueCache: Tensor, convStates: Tensor,
        recurrentStates: Tensor,
    ) -> Tensor:
        states = {KEY_CACHE: keyCache, VALUE_CACHE: valueCache, CONV_STATES: convStates,
                  RECURRENT_STATES: recurrentStates}
        return self.decode(input_ids, position_ids, states)


# The order of the states in a graph's signature; a graph class per state set (torch.export
# names the states after forward's arguments).
STATE_ORDER = (KEY_CACHE, VALUE_CACHE, CONV_STATE, CONV_STATES, RECURRENT_STATES)
GRAPHS: dict[tuple[str, ...], type[Decoder]] = {
    (KEY_CACHE, VALUE_CACHE): KvDecoder,
    (KEY_CACHE, VALUE_CACHE, CONV_STATE): ConvKvDecoder,
    (KEY_CACHE, VALUE_CACHE, CONV_STATES, RECURRENT_STATES): RecurrentKvDecoder,
}


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
    rows = layout.state_rows()
    for name, shapes in rows.items():
        if len(set(shapes)) > 1:
            raise ConfigError(f"{arch.family_tag}: the layers' {name} rows differ in shape {sorted(set(shapes))}",
                              f"the engine contract has one {name} state for every layer that keeps one")
    names = tuple(sorted(rows, key=STATE_ORDER.index))
    return GRAPHS[names](arch, max_context, dtype)
