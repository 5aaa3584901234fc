"""The bytes a Core AI model file holds beside its weights: the converted program, by layout.

Weights dominate a real model's file, but a toy one's program is a tenth of it, and the size
estimate counts every stored byte. The program grows with the ops each block converts to, and
the ops follow the layout: a linear model over its blocks, fitted on fp16 and int8 exports of
1- and 4-layer fixtures of every family (coreai-torch 0.4.3; residuals within 2.3 KB, 200 B for
the quantization term; shared experts and a second RoPE setting refitted on qwen2_moe and gemma3_text;
the gated delta net and the attention output gate fitted on qwen3_next, within 600 B). ``bench/program_bytes.py`` measures them again and prints the fit.
"""

from __future__ import annotations

from ..arch.layout import Attention, DecoderLayout, GatedDeltaNet, Moe, ShortConv
from ..config.zoo_data import Scheme

# Core AI program bytes (the converter's own shape, not a unit to tune by hand).
BASE = 13_830  # inputs, masks, embedding, final norm and head, states
ATTENTION = 4_330  # GQA with RoPE, its KV cache reads and writes
QK_NORM = 2_190  # per-head or whole q/k norms
SHORT_CONV = 2_860
GATED_DELTA = 12_200  # the delta net: projections, conv, the delta rule's while loop, gated norm
OUTPUT_GATE = 1_400  # an attention output gated by a sigmoid of half of q_proj
MLP = 2_320
MOE = 4_870  # router, top-k, two expert matmuls
SHARED_EXPERT = 3_600  # an always-on MLP beside the routed ones, with its sigmoid gate
EXTRA_ROTARY = 5_800  # each RoPE setting beyond the first (Gemma 3's local and global angles)
NORM = 1_480  # each RMS norm of a layer
QUANTIZED = 540  # the first quantized matrix's storage op definitions
PER_QUANTIZED_MATRIX = 130


def program_bytes(layout: DecoderLayout, scheme: Scheme) -> int:
    """Predicted bytes of a Core AI asset's program (everything but the weights)."""
    total = BASE + sum(_layer_bytes(layer) for layer in layout.layers) + EXTRA_ROTARY * _extra_rotaries(layout)
    matrices = sum(1 for spec in layout.tensors() if len(spec.shape) >= 2 and spec.group in scheme.quantize)
    return total + (QUANTIZED + PER_QUANTIZED_MATRIX * matrices if matrices else 0)


def _extra_rotaries(layout: DecoderLayout) -> int:
    settings: list = []
    for layer in layout.layers:
        if isinstance(layer.mixer, Attention) and layer.mixer.rotary is not None and layer.mixer.rotary not in settings:
            settings.append(layer.mixer.rotary)
    return max(len(settings) - 1, 0)


def _layer_bytes(layer) -> int:
    mixer, ffn = layer.mixer, layer.ffn
    total = NORM * len(layer.norms) + (MOE if isinstance(ffn, Moe) else MLP)
    if isinstance(ffn, Moe) and ffn.shared is not None:
        total += SHARED_EXPERT
    if isinstance(mixer, ShortConv):
        return total + SHORT_CONV
    if isinstance(mixer, GatedDeltaNet):
        return total + GATED_DELTA
    assert isinstance(mixer, Attention)
    gate = OUTPUT_GATE if mixer.output_gate else 0
    return total + ATTENTION + gate + (QK_NORM if mixer.qk_norm != "none" else 0)
