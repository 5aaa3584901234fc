"""``zoo new``: a recipe for a new model of a known family, from its ``config.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..arch import FAMILIES
from ..errors import ConfigError, NotImplementedFeatureError
from .recipe import Recipe, check_model_id
from .schema_base import did_you_mean, validate

DEFAULT_TARGETS = {
    "mac": {"platform": "mac", "quant": "sym8"},
    "iphone": {"platform": "iphone", "quant": "int4km"},
}
# Recognised model types without an architecture family yet: a plain refusal, not a guess.
NOT_YET = {"lfm2": "dense LFM2 (conv + attention hybrid without experts)"}


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", "pass the model's config.json with --config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}", "pass the model's config.json") from None


def model_types(family: Any) -> tuple[str, ...]:
    """The transformers ``model_type`` values a family reads."""
    return getattr(family, "hf_model_types", (family.hf_model_type,))


def family_for(config: dict[str, Any], path: Path) -> Any:
    model_type = config.get("model_type")
    for family in FAMILIES.values():
        if model_type in model_types(family):
            return family
    known = ", ".join(sorted(t for f in FAMILIES.values() for t in model_types(f)))
    if model_type in NOT_YET:
        raise NotImplementedFeatureError(
            f"{path}: model_type '{model_type}' ({NOT_YET[model_type]}) is recognised but not supported yet",
            f"supported model types: {known}",
        )
    raise ConfigError(
        f"{path}: model_type '{model_type}' is not a family this zoo knows",
        f"known model types: {known}",
    )


def default_id(config: dict[str, Any], hub: str | None, path: Path) -> str:
    name = (hub or config.get("_name_or_path") or path.parent.name).split("/")[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


def scaffold(
    config_path: Path, *, model_id: str | None, hub: str | None, revision: str | None,
    license_id: str, known_licenses: list[str],
) -> tuple[str, dict[str, Any]]:
    """Build and validate a recipe document from a local config.json; returns (model id, TOML-ready dict)."""
    if license_id not in known_licenses:
        raise ConfigError(f"unknown license '{license_id}'", did_you_mean(license_id, known_licenses))
    return scaffold_config(read_config(config_path), config_path, model_id=model_id, hub=hub, revision=revision,
                           license_id=license_id)


def scaffold_config(
    config: dict[str, Any], config_path: Path, *, model_id: str | None, hub: str | None, revision: str | None,
    license_id: str,
) -> tuple[str, dict[str, Any]]:
    """The recipe document for ``config``; ``config_path`` names where it came from in messages."""
    family = family_for(config, config_path)
    try:
        architecture = family.hf_config_to_fields(config)
    except KeyError as exc:
        raise ConfigError(
            f"{config_path}: {exc.args[0]} is missing", "a complete upstream config.json is needed"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{config_path}: {exc}", "pass the checkpoint's own, unedited config.json") from None
    model_id = model_id or default_id(config, hub, config_path)
    try:
        check_model_id(model_id)
    except ValueError as exc:
        raise ConfigError(str(exc), "choose another id with --id") from None
    hub = hub or config.get("_name_or_path")
    if not hub or "/" not in hub:
        raise ConfigError(f"{config_path}: no upstream Hub repo is known", "pass --hub namespace/name")
    source = {"hub": hub} | ({"revision": revision} if revision else {})
    document = {
        "schema": 1,
        "model": {
            "id": model_id, "name": hub.split("/")[-1], "source": source,
            "license": license_id, "card": "llm",
        },
        "architecture": architecture,
        **({"defaults": family.scaffold_defaults} if getattr(family, "scaffold_defaults", None) else {}),
        "targets": getattr(family, "scaffold_targets", DEFAULT_TARGETS),
    }
    validate(Recipe, document, config_path)
    return model_id, document


def write_recipe(
    recipes_dir: Path, model_id: str, document: dict[str, Any], origin: str = "an upstream config.json"
) -> Path:
    """Write ``recipes/<id>.toml``; never overwrites an existing recipe."""
    import tomli_w

    path = recipes_dir / f"{model_id}.toml"
    header = f"# Scaffolded by `zoo new` from {origin}; review every value.\n"
    try:
        with path.open("x") as handle:
            handle.write(header + tomli_w.dumps(document))
    except FileExistsError:
        raise ConfigError(f"{path}: a recipe with this id exists", "pick another --id or edit it") from None
    return path
