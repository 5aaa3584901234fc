"""Decode graphs of ``config.json`` dicts for tests: the typed config, the graph, the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zootool.arch import decoder
from zootool.arch.registry import architecture_of
from zootool.arch.weights import load_weights


def build_decode_graph(config: dict[str, Any], max_context: int, dtype: torch.dtype = torch.float32) -> Any:
    """The decode graph of a config dict (LFM2-MoE where it names no ``model_type``, as the tiny generator)."""
    arch = architecture_of({"model_type": "lfm2_moe", **config}, "config.json")
    return decoder.build_decode_graph(arch, max_context, dtype)


def loaded_graph(checkpoint: Path, max_context: int, dtype: torch.dtype = torch.float32) -> Any:
    """A checkpoint's decode graph with its weights, in eval mode."""
    graph = build_decode_graph(json.loads((Path(checkpoint) / "config.json").read_text()), max_context, dtype)
    load_weights(graph, checkpoint)
    return graph.eval()


__all__ = ["build_decode_graph", "load_weights", "loaded_graph"]
