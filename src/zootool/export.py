"""Export + quantize: a plan and a checkpoint become the bundle's one model file.

Backend ``coreai`` writes an ``.aimodel`` asset, ``coremltools`` an ``.mlpackage`` ML
Program; the plan (platform and recipe) chooses, never a flag alone. Either way the
model is the whole decoder as one stateful decode graph (``arch.decode_graph``).
"""

from __future__ import annotations

import gc
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .errors import NotImplementedFeatureError
from .plan import BuildPlan

# family -> (module builder, weight loader), imported only when a build needs them.
FAMILY_MODULES = {
    "lfm2_moe": ("zootool.arch.lfm2_moe_model:build_decode_graph", "zootool.arch.lfm2_moe_weights:load_weights"),
    "llama": ("zootool.arch.llama_model:build_decode_graph", "zootool.arch.llama_weights:load_weights"),
}
# backend -> model file suffix.
SUFFIXES = {"coreai": ".aimodel", "coremltools": ".mlpackage"}
# A dense family has no expert matmul; the Core AI exporter still takes a kernel name.
NO_KERNEL = "none"


def _load(ref: str) -> Callable[..., Any]:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def family_functions(family: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    if family not in FAMILY_MODULES:
        raise NotImplementedFeatureError(
            f"no export module for architecture family '{family}' yet",
            "families with an exporter: " + ", ".join(FAMILY_MODULES),
        )
    builder, loader = FAMILY_MODULES[family]
    return _load(builder), _load(loader)


def model_name(stem: str, backend: str) -> str:
    """``<stem>.aimodel`` (or ``.mlpackage``): the bundle's one model file."""
    return f"{stem}{SUFFIXES[backend]}"


def build_graph(plan: BuildPlan, checkpoint: Path, quantize_unit: Callable[[Any, tuple[str, ...]], None] | None = None) -> Any:
    """The plan's torch decode graph with the checkpoint's weights loaded, in fp16.

    fp16, not fp32: both backends store and compute fp16 anyway, and an fp32 copy of the
    flagship (34 GB) does not fit this machine; bf16 checkpoints convert to fp16 exactly.
    ``quantize_unit(graph, prefixes)`` runs after each layer (and each top-level module) is
    loaded, so at most one layer is held at fp16 beside the stored weights.
    """
    import torch

    build, load = family_functions(plan.architecture.family)
    config = json.loads((checkpoint / "config.json").read_text())
    with torch.device("meta"):
        graph = build(config, plan.context_length, dtype=torch.float16)
    load(graph, checkpoint, None if quantize_unit is None else lambda unit: quantize_unit(graph, unit))
    return graph


def export_model(
    plan: BuildPlan, checkpoint: Path, out_dir: Path, stem: str, *,
    scheme: Any = None, scheme_id: str | None = None, kernel: str | None = None,
) -> Path:
    """Convert the decode graph into ``out_dir``; ``scheme``/``kernel`` default to the plan's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    quant = SimpleNamespace(name=scheme_id or plan.scheme_id, quantize=(scheme or plan.scheme).quantize)
    kernel = kernel or plan.kernel_id
    convert = _converter(plan, quant, kernel)
    graph = build_graph(plan, checkpoint, _unit_quantizer(plan, quant, kernel))
    try:
        return convert(graph, out_dir / model_name(stem, plan.backend), asset_metadata(plan, checkpoint))
    finally:
        del graph
        gc.collect()


def _unit_quantizer(plan: BuildPlan, quant: Any, kernel: str) -> Callable[[Any, tuple[str, ...]], None] | None:
    """Core AI quantizes torch modules, so it can do it while loading; Core ML quantizes its own program."""
    if plan.backend != "coreai":
        return None
    from .backends.coreai import quantize_unit

    return lambda graph, unit: quantize_unit(graph, quant, expert_kernel(kernel), unit)


def _converter(plan: BuildPlan, quant: Any, kernel: str) -> Callable[[Any, Path, dict], Path]:
    """``convert(graph, path, metadata)`` of the plan's backend."""
    if plan.backend == "coremltools":
        from .backends.coremltools import deployment_target, export_mlpackage

        target = deployment_target(plan.platform.os, plan.platform.min_os)
        return lambda graph, path, meta: export_mlpackage(graph, path, scheme=quant, target=target, metadata=meta)
    if plan.backend != "coreai":
        raise NotImplementedFeatureError(
            f"no exporter for backend '{plan.backend}'", "backends with an exporter: " + ", ".join(SUFFIXES)
        )
    from .backends.coreai import export_decode_graph

    # The bundle's kernel fixes tokens per call (gather_qmm: 1); its gate twins keep that shape.
    fixed = plan.kernel.query_len
    return lambda graph, path, meta: export_decode_graph(
        graph, path, query_len=fixed, scheme=quant, kernel=expert_kernel(kernel), metadata=meta,
        consume_weights=True,  # export_model drops the graph after the export
    )


def expert_kernel(kernel: str) -> str:
    """The Core AI exporter's expert kernel for a plan's kernel id (a dense model has none)."""
    return "gather_mm" if kernel == NO_KERNEL else kernel


def asset_metadata(plan: BuildPlan, checkpoint: Path) -> dict[str, Any]:
    """Metadata stored inside the model file (no local paths, no user names).

    The checkpoint's ``config.json`` goes in too, so a runtime that must rebuild the graph
    (a Core ML package on Linux) needs nothing but the bundle.
    """
    from . import __version__

    source = getattr(plan.source, "hub", None) or "generated"
    return {
        "author": f"zootool {__version__} (recipe {plan.recipe_id})",
        "license": plan.license.name,
        "description": f"{plan.model_name} for {plan.platform.display_name}: {plan.scheme_id}, "
                       f"kernel {plan.kernel_id}, from {source}",
        "custom": {
            "zootool.recipe": plan.recipe_id,
            "zootool.target": plan.target,
            "zootool.plan_hash": plan.plan_hash,
            "zootool.version": __version__,
            "zootool.family": plan.architecture.family,
            "zootool.config": json.loads((checkpoint / "config.json").read_text()),
            "zootool.context_length": plan.context_length,
        },
    }
