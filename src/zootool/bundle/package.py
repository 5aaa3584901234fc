"""Bundle contents beside the model files: tokenizer, LICENSE, CoreAIKit ``metadata.json``.

Only allow-listed checkpoint files are copied, so a stray checkpoint file can never
end up in a bundle.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

from ..backends.registry import backend
from ..errors import FetchError
from ..fetch.license_text import LicenseText, license_text, write_license
from ..plan.resolve import BuildPlan
from .app_metadata import MAIN_ROLE, METADATA_FILE, METADATA_VERSION, TOKENIZER_DIR, AppMetadata
from .manifest import write_json_atomic

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "chat_template.jinja",
)


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
    return copied + _template_file(dest)


def _template_file(dest: Path) -> list[str]:
    """``chat_template.jinja`` from ``tokenizer_config.chat_template`` when the source has only that."""
    config = json.loads((dest / "tokenizer_config.json").read_text()) if (dest / "tokenizer_config.json").is_file() else {}
    template = config.get("chat_template")
    if (dest / "chat_template.jinja").is_file() or not isinstance(template, str):
        return []
    (dest / "chat_template.jinja").write_text(template)
    return ["chat_template.jinja"]


def package_model_dir(plan: BuildPlan, checkpoint: Path, model_dir: Path, model: Path) -> None:
    """Beside the model file: ``tokenizer/`` and the ``metadata.json`` the engines read."""
    copy_tokenizer(checkpoint, model_dir / TOKENIZER_DIR)
    kinds = state_kinds(model) if backend(plan.backend).language_bundle else {}
    write_app_metadata(plan, model_dir, model.name, kinds)


def state_kinds(model: Path) -> dict[str, str]:
    """``{state: kind}`` of a Core AI asset as the engines classify them: a dynamic axis grows (KV), the rest is fixed.

    Read from the asset itself; Core ML packages are not LanguageBundles and get none.
    """
    from ..backends.coreai.export import storage_summary
    from .contract import parse_descriptor

    states = storage_summary(model)["states"]
    return {name: "kv_cache" if -1 in parse_descriptor(text)[1] else "fixed" for name, text in states.items()}


def copy_license(plan: BuildPlan, checkpoint: Path, bundle: Path, license_dir: Path) -> LicenseText:
    """The bundle's LICENSE: the upstream's file, or the zoo's copy of a standard license's text."""
    text = license_text(plan, checkpoint, license_dir)
    write_license(plan, text, bundle / "LICENSE")
    return text


def app_metadata(plan: BuildPlan, model_file: str, state_kinds: dict[str, str]) -> dict[str, Any]:
    """The ``metadata.json`` LanguageBundle reads (metadata_version 0.2); ``state_kinds`` by state name."""
    source = plan.source
    language: dict[str, Any] = {
        "tokenizer": tokenizer_hub_id(plan),
        "vocab_size": plan.architecture.vocab_size,
        "max_context_length": plan.context_length,
        "embedded_tokenizer": True,
        "function_map": {MAIN_ROLE: [MAIN_ROLE]},
    }
    if state_kinds:
        language["states"] = dict(state_kinds)
    assets: dict[str, Any] = {"main": model_file}
    if not backend(plan.backend).language_bundle:
        # Core ML, not Core AI: apps load it with MLModel (swift-transformers), not LanguageBundle.
        assets["format"] = "mlpackage"
    data: dict[str, Any] = {
        "metadata_version": METADATA_VERSION, "kind": "llm", "name": plan.model_name,
        "assets": assets, "language": language,
        "source": {
            "model_definition": "torch",
            "hf_model_id": getattr(source, "hub", None),
            "hf_revision": getattr(source, "revision", None),
        },
        "compression": {"scheme": plan.scheme_id},
        "compilation": {
            "date": _dt.date.today().isoformat(),
            "targets": [f"{plan.platform.os_name}{plan.platform.min_os}"],
        },
    }
    AppMetadata.model_validate(data)  # what we write must be what the loaders accept
    return data


def tokenizer_hub_id(plan: BuildPlan) -> str:
    """``language.tokenizer``: a Hub id, as Apple's exporter writes it (the loader reads the embedded
    ``tokenizer/`` and falls back to this id only without it). The upstream repo; a generated fixture
    has none, so its own publish repo (else its recipe id) stands there."""
    return getattr(plan.source, "hub", None) or plan.publish_repo or plan.recipe_id


def write_app_metadata(plan: BuildPlan, model_dir: Path, model_file: str, state_kinds: dict[str, str]) -> None:
    write_json_atomic(model_dir / METADATA_FILE, app_metadata(plan, model_file, state_kinds))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
