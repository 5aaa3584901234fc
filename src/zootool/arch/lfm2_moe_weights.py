"""Loading a transformers LFM2-MoE checkpoint into the export modules of ``lfm2_moe_model``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .lfm2_moe import HUB_EXPERT_PARTS
from .safetensors_checkpoint import SafetensorsCheckpoint, assign_checked

if TYPE_CHECKING:
    from .lfm2_moe_model import Lfm2MoeDims


def load_weights(module: nn.Module | Sequence[nn.Module], checkpoint_dir: Path) -> None:
    """Fill decode chunk(s) with a transformers LFM2-MoE checkpoint, tensor by tensor.

    Accepts both expert layouts: stacked ``experts.gate_up_proj`` / ``down_proj``
    (transformers 5 in memory) and per-expert ``experts.N.w1/w3/w2`` (as saved on
    the Hub). Parameters are replaced, so meta-device modules work. Raises
    :class:`FetchError` for a missing, truncated or mismatching tensor or file.
    """
    chunks = [module] if isinstance(module, nn.Module) and not isinstance(module, nn.ModuleList) else list(module)
    with SafetensorsCheckpoint(Path(checkpoint_dir)) as checkpoint:
        for chunk in chunks:
            for name in chunk.state_dict(keep_vars=True):
                assign_checked(chunk, name, _read(checkpoint, chunk.dims, name), str(checkpoint.directory))


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
