"""``zoo new``: a recipe for a new model of a known family, from its ``config.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .recipe import Recipe, check_model_id
from .schema_base import validate
from .zoo_data import unknown_license_hint


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", "pass the model's config.json with --config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}", "pass the model's config.json") from None


def default_id(config: dict[str, Any], hub: str | None, path: Path) -> str:
    name = (hub or config.get("_name_or_path") or path.parent.name).split("/")[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


def scaffold(
    config_path: Path, *, model_id: str | None, hub: str | None, revision: str | None,
    license_id: str, known_licenses: list[str],
) -> tuple[str, dict[str, Any]]:
    """Build and validate a recipe document from a local config.json; returns (model id, TOML-ready dict)."""
    if license_id not in known_licenses:
        raise ConfigError(f"unknown license '{license_id}'", unknown_license_hint(license_id, known_licenses))
    return scaffold_config(read_config(config_path), config_path, model_id=model_id, hub=hub, revision=revision,
                           license_id=license_id)


def scaffold_config(
    config: dict[str, Any], config_path: Path, *, model_id: str | None, hub: str | None, revision: str | None,
    license_id: str,
) -> tuple[str, dict[str, Any]]:
    """The recipe document for ``config``; ``config_path`` names where it came from in messages."""
    from ..arch.registry import architecture_of

    arch = architecture_of(config, str(config_path))
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
        "architecture": arch.recipe_fields(),
        **({"defaults": dict(arch.scaffold.defaults)} if arch.scaffold.defaults else {}),
        "targets": {name: dict(table) for name, table in arch.scaffold.targets.items()},
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
