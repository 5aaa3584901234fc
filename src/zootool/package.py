"""Bundle contents beside the model files: tokenizer, LICENSE, CoreAIKit ``metadata.json``.

Only allow-listed checkpoint files are copied, so a stray checkpoint file can never
end up in a bundle.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

from .errors import FetchError
from .manifest import write_json_atomic
from .plan import BuildPlan

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "chat_template.jinja",
)
OS_TARGET = {"ios": "iOS", "ipados": "iPadOS", "macos": "macOS"}


def copy_tokenizer(checkpoint: Path, dest: Path) -> list[str]:
    """Copy the tokenizer and generation config; a checkpoint without tokenizer.json is refused."""
    if not (checkpoint / "tokenizer.json").is_file():
        raise FetchError(f"{checkpoint}: tokenizer.json is missing", "the bundle ships the upstream tokenizer")
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copyfile(checkpoint / name, dest / name)
            copied.append(name)
    return copied


def copy_license(plan: BuildPlan, checkpoint: Path, bundle: Path) -> None:
    shutil.copyfile(checkpoint / plan.license.text_file, bundle / "LICENSE")


def app_metadata(plan: BuildPlan, model_files: list[str]) -> dict[str, Any]:
    """The ``metadata.json`` CoreAIKit reads (metadata_version 0.2)."""
    source = plan.source
    data: dict[str, Any] = {
        "metadata_version": "0.2",
        "kind": "llm",
        "name": plan.model_name,
        "assets": {"main": model_files[0]},
        "language": {
            "tokenizer": "tokenizer",
            "vocab_size": plan.architecture.vocab_size,
            "max_context_length": plan.context_length,
            "embedded_tokenizer": False,
            "function_map": {"decode": "main", "prefill": "main"},
        },
        "source": {
            "model_definition": "torch",
            "hf_model_id": getattr(source, "hub", None),
            "hf_revision": getattr(source, "revision", None),
        },
        "compression": {"scheme": plan.scheme_id},
        "compilation": {
            "date": _dt.date.today().isoformat(),
            "targets": [f"{OS_TARGET[plan.platform.os]}{plan.platform.min_os}"],
        },
    }
    if len(model_files) > 1:
        data["assets"]["chunks"] = model_files
    if model_files[0].endswith(".mlpackage"):
        # Core ML, not Core AI: apps load it with MLModel; the KV caches are plain inputs/outputs.
        data["assets"]["format"] = "mlpackage"
    return data


def write_app_metadata(plan: BuildPlan, model_dir: Path, model_files: list[str]) -> None:
    write_json_atomic(model_dir / "metadata.json", app_metadata(plan, model_files))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
