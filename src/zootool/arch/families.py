"""The family registry: each architecture family's decode-graph builder and weight loader.

Named as ``module:function`` strings and imported only when a build needs them, so the
planner (which reads only a family's schema) never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import NotImplementedFeatureError

# family -> (module builder, weight loader), imported only when a build needs them.
FAMILY_MODULES = {
    "lfm2_moe": ("zootool.arch.lfm2_moe.model:build_decode_graph", "zootool.arch.lfm2_moe.weights:load_weights"),
    "llama": ("zootool.arch.llama.model:build_decode_graph", "zootool.arch.llama.weights:load_weights"),
}


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
