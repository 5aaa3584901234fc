"""Loading a transformers LFM2-MoE checkpoint into the export modules of ``lfm2_moe_model``."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..safetensors_checkpoint import SafetensorsCheckpoint, load_by_unit, unmapping
from .schema import HUB_EXPERT_PARTS

if TYPE_CHECKING:
    from .model import Lfm2MoeDims


def load_weights(
    graph: nn.Module, checkpoint_dir: Path, on_unit: Callable[[tuple[str, ...]], None] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Fill a decode graph with a transformers LFM2-MoE checkpoint, tensor by tensor.

    Accepts both expert layouts: stacked ``experts.gate_up_proj`` / ``down_proj``
    (transformers 5 in memory) and per-expert ``experts.N.w1/w3/w2`` (as saved on
    the Hub). Parameters are replaced, so meta-device modules work; a tied head is
    re-tied to the embedding so it is stored once. ``on_unit`` and ``only``
    as in :func:`load_by_unit`. Raises :class:`FetchError` for a missing, truncated or
    mismatching tensor or file.
    """
    with SafetensorsCheckpoint(Path(checkpoint_dir)) as checkpoint:
        load_by_unit(graph, partial(_read, checkpoint, graph.dims), str(checkpoint.directory),
                     unmapping(checkpoint, on_unit), only)


def _read(checkpoint: SafetensorsCheckpoint, dims: Lfm2MoeDims, name: str) -> Tensor:
    if name == "lm_head.weight":
        return checkpoint.get("model.embed_tokens.weight" if dims.tie_word_embeddings else name)
    full = f"model.{name}"
    if name.endswith((".experts.gate_up_proj", ".experts.down_proj")) and full not in checkpoint:
        return _stack_experts(checkpoint, dims, full)
    return checkpoint.get(full)


def _stack_experts(checkpoint: SafetensorsCheckpoint, dims: Lfm2MoeDims, fused_name: str) -> Tensor:
    prefix, kind = fused_name.rsplit(".", 1)
    parts = HUB_EXPERT_PARTS[kind]
    per_expert = [
        torch.cat([checkpoint.get(f"{prefix}.{expert}.{part}.weight") for part in parts], dim=0)
        for expert in range(dims.num_experts)
    ]
    return torch.stack(per_expert)
