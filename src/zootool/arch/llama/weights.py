"""Filling the Llama-family decode modules of ``llama_model`` with checkpoint tensors."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from torch import nn

from ..safetensors_checkpoint import SafetensorsCheckpoint, load_by_unit, unmapping

EMBEDDING = "model.embed_tokens.weight"


def checkpoint_name(module_name: str, tied: bool) -> str:
    """The transformers checkpoint tensor behind a decode-chunk parameter name."""
    if module_name == "lm_head.weight":
        return EMBEDDING if tied else module_name
    return f"model.{module_name}"


def load_weights(
    graph: nn.Module, checkpoint_dir: Path, on_unit: Callable[[tuple[str, ...]], None] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Fill a decode graph with a transformers llama/qwen3/mistral safetensors checkpoint.

    Parameters are replaced, so meta-device modules work; ``on_unit`` as in
    :func:`load_by_unit`. Raises :class:`FetchError` for a missing, truncated or
    mismatching tensor or file. ``only`` as in :func:`load_by_unit`.
    """
    with SafetensorsCheckpoint(Path(checkpoint_dir)) as checkpoint:
        load_tensors(graph, checkpoint.get, str(checkpoint.directory), unmapping(checkpoint, on_unit), only)


def load_tensors(
    graph: nn.Module, read: Callable[[str], Any], where: str, on_unit: Callable[[tuple[str, ...]], None] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Fill a decode graph from ``read(checkpoint tensor name) -> tensor``; shapes are checked."""
    tied = graph.dims.tie_word_embeddings
    load_by_unit(graph, lambda name: read(checkpoint_name(name, tied)), where, on_unit, only)
