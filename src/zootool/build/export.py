"""Export + quantize: a plan and a checkpoint become the bundle's one model file.

Backend ``coreai`` writes an ``.aimodel`` asset, ``coremltools`` an ``.mlpackage`` ML
Program; the plan (platform and recipe) chooses, never a flag alone. Either way the
model is the whole decoder as one stateful decode graph (``arch.decode_graph``).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends.registry import backend
from ..config.zoo_data import Scheme
from ..phase_clock import timed
from ..plan.resolve import BuildPlan

def model_name(stem: str, backend_id: str) -> str:
    """``<stem>.aimodel`` (or ``.mlpackage``): the bundle's one model file."""
    return f"{stem}{backend(backend_id).suffix}"


def build_graph(plan: BuildPlan, checkpoint: Path, quantize_unit: Callable[[Any, tuple[str, ...]], None] | None = None) -> Any:
    """The plan's torch decode graph with the checkpoint's weights loaded, in fp16.

    fp16, not fp32: both backends store and compute fp16 anyway, and an fp32 copy of the
    flagship (34 GB) does not fit this machine; bf16 checkpoints convert to fp16 exactly.
    ``quantize_unit(graph, prefixes)`` runs after each layer (and each top-level module) is
    loaded, so at most one layer is held at fp16 beside the stored weights.
    """
    import torch

    from ..arch.decoder import build_decode_graph
    from ..arch.weights import load_weights

    with timed("load"):
        with torch.device("meta"):
            graph = build_decode_graph(plan.architecture, plan.context_length, dtype=torch.float16)
        load_weights(graph, checkpoint, None if quantize_unit is None else lambda unit: quantize_unit(graph, unit))
    return graph


def export_model(
    plan: BuildPlan, checkpoint: Path, out_dir: Path, stem: str, *,
    scheme: Scheme | None = None, kernel: str | None = None,
) -> Path:
    """Convert the decode graph into ``out_dir``; ``scheme``/``kernel`` default to the plan's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    quant = scheme or plan.scheme
    kernel = kernel or plan.kernel_id
    chosen = backend(plan.backend)
    convert = chosen.converter(plan, quant, kernel)
    graph = build_graph(plan, checkpoint, chosen.unit_quantizer(quant, kernel))
    try:
        return convert(graph, out_dir / model_name(stem, plan.backend), asset_metadata(plan, checkpoint, kernel))
    finally:
        del graph
        gc.collect()


def asset_metadata(plan: BuildPlan, checkpoint: Path, kernel: str) -> dict[str, Any]:
    """Metadata stored inside the model file (no local paths, no user names).

    ``kernel`` is the kernel id this export uses (the plan's, or a gate twin's), as the plan
    names it: a dense model's is ``none``, though its exporter runs the stock composite path.
    The checkpoint's ``config.json`` goes in too, so a runtime that must rebuild the graph
    (a Core ML package on Linux) needs nothing but the bundle.
    """
    from .. import __version__

    source = getattr(plan.source, "hub", None) or "generated"
    return {
        "author": f"zootool {__version__} (recipe {plan.recipe_id})",
        "license": plan.license.name,
        "description": f"{plan.model_name} for {plan.platform.display_name}: {plan.scheme_id}, "
                       f"kernel {kernel}, from {source}",
        "custom": {
            "zootool.recipe": plan.recipe_id,
            "zootool.target": plan.target,
            "zootool.kernel": kernel,
            "zootool.plan_hash": plan.plan_hash,
            "zootool.version": __version__,
            "zootool.family": plan.architecture.family,
            "zootool.config": json.loads((checkpoint / "config.json").read_text()),
            "zootool.context_length": plan.context_length,
        },
    }
