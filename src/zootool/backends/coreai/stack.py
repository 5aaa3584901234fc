"""The Core AI stack, imported on demand: a clear error where it is missing, assets opened checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import BackendFailedError, BackendUnavailableError


def require_stack() -> None:
    try:
        import coreai.runtime  # noqa: F401
        import coreai_torch  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(f"the Core AI conversion stack is not importable: {exc}") from exc


def load_asset(aimodel_path: Path) -> Any:
    """The ``AIModelAsset`` at ``aimodel_path``; ``BackendFailedError`` if it is not one."""
    require_stack()
    from coreai.authoring.asset import AIModelAsset

    if not AIModelAsset.is_valid(aimodel_path):
        raise BackendFailedError(f"{aimodel_path} is not a Core AI asset", "pass the path of a .aimodel directory")
    return AIModelAsset.load(aimodel_path)
