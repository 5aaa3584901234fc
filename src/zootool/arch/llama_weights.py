"""Filling the Llama-family decode modules of ``llama_model`` with checkpoint tensors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .safetensors_checkpoint import SafetensorsCheckpoint, assign_checked, tie_head, untied_names

EMBEDDING = "model.embed_tokens.weight"


def checkpoint_name(module_name: str, tied: bool) -> str:
    """The transformers checkpoint tensor behind a decode-chunk parameter name."""
    if module_name == "lm_head.weight":
        return EMBEDDING if tied else module_name
    return f"model.{module_name}"


def load_weights(graph: nn.Module, checkpoint_dir: Path) -> None:
    """Fill a decode graph with a transformers llama/qwen3/mistral safetensors checkpoint.

    Parameters are replaced, so meta-device modules work. Raises :class:`FetchError`
    for a missing, truncated or mismatching tensor or file.
    """
    with SafetensorsCheckpoint(Path(checkpoint_dir)) as checkpoint:
        load_tensors(graph, checkpoint.get, str(checkpoint.directory))


def load_tensors(graph: nn.Module, read: Callable[[str], Any], where: str) -> None:
    """Fill a decode graph from ``read(checkpoint tensor name) -> tensor``; shapes are checked."""
    tied = graph.dims.tie_word_embeddings
    for name in untied_names(graph):
        assign_checked(graph, name, read(checkpoint_name(name, tied)), where)
    tie_head(graph)
