"""Qwen3.5 text tower (``qwen3_5_text``): gated delta-net linear attention beside gated full attention, dense MLPs.

The mixers are ``arch.delta_config``'s, the delta net's projections stored apart
(``in_proj_qkv``, ``in_proj_z``, ``in_proj_b``, ``in_proj_a``). Text positions give Qwen3.5's
multimodal RoPE three equal position ids, which is plain RoPE. The Hub's Qwen3.5 checkpoints are
vision-language (``qwen3_5``) and not read yet (arch.registry NOT_YET). Known gap: the tiny
fixture's fp16 graph misses transformers' fp32 logits by up to 0.1 at 2 of 44 positions, five
times transformers' own fp16 error (tests/build/test_family_builds.py); the gate still checks
every build against the fp32 oracle.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ..delta_config import GatedDeltaHybrid
from ..scaffolds import DENSE_CORE_AI
from ..weight_names import WeightNames
from .llama import LLAMA_NAMES


class Qwen3_5TextArch(GatedDeltaHybrid):
    """A Qwen3.5 dense hybrid text decoder."""

    family_tag: ClassVar[str] = "qwen3_5_text"
    model_types: ClassVar[tuple[str, ...]] = ("qwen3_5_text",)
    causal_lm: ClassVar[dict[str, str]] = {"qwen3_5_text": "Qwen3_5ForCausalLM"}
    weight_names: ClassVar[WeightNames] = LLAMA_NAMES
    scaffold = DENSE_CORE_AI

    family: Literal["qwen3_5_text"]
    model_type: Literal["qwen3_5_text"] = "qwen3_5_text"
