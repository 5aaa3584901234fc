"""Filling any family's decode graph with its checkpoint, through the family's weight-name map."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .safetensors_checkpoint import SafetensorsCheckpoint, load_by_unit, unmapping
from .weight_names import Direct, Rows, Source, Stacked


def load_weights(
    graph: nn.Module, checkpoint_dir: Path, on_unit: Callable[[tuple[str, ...]], None] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Fill a decode graph (``arch.decoder``) with a transformers safetensors checkpoint, unit by unit.

    Parameters are replaced, so meta-device modules work; a tied head is re-tied to the
    embedding so it is stored once. Routed experts load from either layout: stacked (as
    transformers 5 holds them) or one matrix per expert (as the Hub stores them).
    ``on_unit`` and ``only`` as in :func:`load_by_unit`. Raises :class:`FetchError` for a
    missing, truncated or mismatching tensor or file.
    """
    found = graph.arch.sources()
    with SafetensorsCheckpoint(Path(checkpoint_dir)) as checkpoint:
        load_by_unit(graph, lambda name: read_source(checkpoint, found[name]), str(checkpoint.directory),
                     unmapping(checkpoint, on_unit), only)


def read_source(checkpoint: Any, source: Source) -> Tensor:
    """One graph tensor out of a checkpoint (``SafetensorsCheckpoint``-like: ``get``, ``get_slice``, ``in``)."""
    if isinstance(source, Direct):
        return checkpoint.get(source.name)
    if isinstance(source, Rows):
        return checkpoint.get_slice(source.name)[source.start:source.stop]
    if source.stacked in checkpoint:
        return checkpoint.get(source.stacked)
    return _stack(checkpoint, source)


def _stack(checkpoint: Any, source: Stacked) -> Tensor:
    per_expert = [torch.cat([checkpoint.get(name) for name in parts], dim=0) for parts in source.per_expert]
    return torch.stack(per_expert)
