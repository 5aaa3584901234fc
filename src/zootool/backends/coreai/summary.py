"""What a ``.aimodel`` asset holds (signatures, storage and op counts), read once per file version.

``AIModelAsset.summary`` (coreai-core 1.0.0b3) parses the whole program bytecode: for the
flagship that is 12-20 s and ~9 GB of memory each time, and one build asks three times
(the state kinds of ``metadata.json``, then the engine-contract check twice). The parsed
facts are kept per asset version: the asset's files' (name, size, mtime, inode), so a
rewritten or re-exported asset is read again.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import BackendFailedError

KEPT_VERSIONS = 16


def storage_summary(aimodel_path: Path, function: str = "main") -> dict[str, Any]:
    """What ``asset.summary()`` says, as plain data, without running the model.

    Keys: ``functions``; ``storage`` (element type -> stored element count);
    ``compute`` (element types); ``ops`` (op name -> count); ``inputs``/``outputs``/
    ``states`` of ``function`` (name -> descriptor text).
    """
    path = Path(aimodel_path).resolve()
    facts = _parsed(path, _version(path))
    signature = facts["signatures"].get(function)
    if not facts["functions"]:  # what a damaged program parses to
        raise BackendFailedError(f"{aimodel_path}: the asset's program defines no function: it is damaged",
                                 "zoo verify compares its files with the manifest; rebuild or re-download it")
    if signature is None:
        raise BackendFailedError(
            f"{aimodel_path}: the asset has no function {function!r} (it has {', '.join(facts['functions'])})",
            "re-export the model",
        )
    shared = {key: facts[key] for key in ("functions", "storage", "compute", "ops")}
    return {**_copied(shared), **_copied(signature)}


def asset_functions(aimodel_path: Path) -> list[str]:
    """The functions the asset's program defines (empty when its bytecode names none)."""
    path = Path(aimodel_path).resolve()
    return list(_parsed(path, _version(path))["functions"])


def has_custom_kernel(aimodel_path: Path) -> bool:
    """Whether the asset contains a custom Metal kernel op (GPU-only)."""
    return storage_summary(aimodel_path)["ops"].get("metal4_kernel", 0) > 0


def _version(path: Path) -> tuple[tuple[str, int, int, int], ...]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    return tuple((p.relative_to(path).as_posix(), *_stat(p)) for p in files)


def _stat(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns, status.st_ino


@lru_cache(maxsize=KEPT_VERSIONS)
def _parsed(path: Path, version: tuple[tuple[str, int, int, int], ...]) -> dict[str, Any]:
    from .stack import load_asset

    summary = load_asset(path).summary(include_statistics=True)
    if summary is None:
        raise BackendFailedError(f"{path}: the asset holds no program bytecode", "re-export the model")
    functions = list(summary.function_names)
    return {
        "functions": functions,
        "storage": {str(kind): int(count) for kind, count in summary.storage_types},
        "compute": [str(kind) for kind in summary.compute_types],
        "ops": {str(op): int(count) for op, count in summary.operation_distribution},
        "signatures": {name: _signature(summary, name) for name in functions},
    }


def _signature(summary: Any, function: str) -> dict[str, dict[str, str]]:
    return {
        "inputs": dict(summary.function_inputs(function)),
        "outputs": dict(summary.function_outputs(function)),
        "states": dict(summary.function_states(function)),
    }


def _copied(facts: dict[str, Any]) -> dict[str, Any]:
    """A caller may change what it gets; the kept facts must not change with it."""
    return {key: value.copy() for key, value in facts.items()}
