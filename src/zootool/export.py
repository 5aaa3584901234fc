"""Export + quantize: a plan and a checkpoint become model chunk(s) through the plan's backend.

Backend ``coreai`` writes ``.aimodel`` assets, ``coremltools`` writes ``.mlpackage``
ML Programs; the plan (platform and recipe) chooses, never a flag alone.

Chunks are built, loaded and converted one at a time so no single export holds the
whole model in memory.
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
    "lfm2_moe": ("zootool.arch.lfm2_moe_model:build_decode_chunks", "zootool.arch.lfm2_moe_weights:load_weights"),
    "llama": ("zootool.arch.llama_model:build_decode_chunks", "zootool.arch.llama_weights:load_weights"),
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


def chunk_names(stem: str, count: int, suffix: str = ".aimodel") -> list[str]:
    """``<stem>.aimodel`` for one chunk, ``<stem>-1of4.aimodel``... for several (or ``.mlpackage``)."""
    if count == 1:
        return [f"{stem}{suffix}"]
    return [f"{stem}-{i}of{count}{suffix}" for i in range(1, count + 1)]


def build_modules(plan: BuildPlan, checkpoint: Path, chunk_index: int | None = None) -> list[Any]:
    """Torch decode-step module(s) of the plan with the checkpoint's weights loaded."""
    import torch

    build, load = family_functions(plan.architecture.family)
    config = json.loads((checkpoint / "config.json").read_text())
    with torch.device("meta"):
        chunks = build(config, plan.context_length, plan.chunks)
    chosen = chunks if chunk_index is None else [chunks[chunk_index]]
    load(chosen, checkpoint)
    return chosen


def export_models(
    plan: BuildPlan, checkpoint: Path, out_dir: Path, stem: str, *,
    scheme: Any = None, scheme_id: str | None = None, kernel: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Convert every chunk into ``out_dir``; ``scheme``/``kernel`` default to the plan's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    quant = SimpleNamespace(
        name=scheme_id or plan.scheme_id,
        quantize=(scheme or plan.scheme).quantize,
    )
    convert = _converter(plan, quant, kernel or plan.kernel_id)
    paths = []
    for index, name in enumerate(chunk_names(stem, plan.chunks, SUFFIXES[plan.backend])):
        if on_chunk:
            on_chunk(index, plan.chunks)
        (module,) = build_modules(plan, checkpoint, index)
        paths.append(convert(module, out_dir / name, asset_metadata(plan, index)))
        del module
        gc.collect()
    return paths


def _converter(plan: BuildPlan, quant: Any, kernel: str) -> Callable[[Any, Path, dict], Path]:
    """``convert(module, path, metadata)`` of the plan's backend."""
    if plan.backend == "coremltools":
        from .backends.coremltools import deployment_target, export_mlpackage

        target = deployment_target(plan.platform.os, plan.platform.min_os)
        return lambda module, path, meta: export_mlpackage(
            module, module.example_inputs(), path, scheme=quant, target=target, metadata=meta
        )
    if plan.backend != "coreai":
        raise NotImplementedFeatureError(
            f"no exporter for backend '{plan.backend}'", "backends with an exporter: " + ", ".join(SUFFIXES)
        )
    from .backends.coreai import export_aimodel

    expert_kernel = "gather_mm" if kernel == NO_KERNEL else kernel
    return lambda module, path, meta: export_aimodel(
        module, module.example_inputs(), path, scheme=quant, kernel=expert_kernel, metadata=meta
    )


def asset_metadata(plan: BuildPlan, index: int) -> dict[str, Any]:
    """Metadata stored inside each model file (no local paths, no user names)."""
    from . import __version__

    source = getattr(plan.source, "hub", None) or "generated"
    return {
        "author": f"zootool {__version__} (recipe {plan.recipe_id})",
        "license": plan.license.name,
        "description": f"{plan.model_name} for {plan.platform.display_name}: {plan.scheme_id}, "
                       f"kernel {plan.kernel_id}, chunk {index + 1} of {plan.chunks}, from {source}",
        "custom": {
            "zootool.recipe": plan.recipe_id,
            "zootool.target": plan.target,
            "zootool.plan_hash": plan.plan_hash,
            "zootool.version": __version__,
            "zootool.chunk": f"{index + 1}/{plan.chunks}",
        },
    }
