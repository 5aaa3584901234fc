"""``zoo new``: scaffold a recipe from a Hub id (pinned to a commit) or, offline, from a config.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.zoo_data import Zoo
from ..errors import ConfigError


def new_command(
    zoo: Zoo, hub_id: str | None, *, config: Path | None, license_id: str | None, model_id: str | None,
    hub: str | None, revision: str | None, endpoint: str | None,
) -> dict[str, Any]:
    """Write ``recipes/<id>.toml`` and say what it was made from."""
    if (hub_id is None) == (config is None):
        raise ConfigError("zoo new needs one source: a Hub id (zoo new Org/Model) or --config FILE",
                          "give a Hub id to read it from the Hub, or --config with --license to work offline")
    if hub_id is not None:
        return _from_hub(zoo, hub_id, license_id, model_id, hub, revision, endpoint)
    return _from_file(zoo, config, license_id, model_id, hub, revision, endpoint)


def _from_hub(zoo: Zoo, hub_id: str, license_id: str | None, model_id: str | None, hub: str | None,
              revision: str | None, endpoint: str | None) -> dict[str, Any]:
    from ..config.license_match import choose_license
    from ..config.scaffold import scaffold_config, write_recipe
    from ..fetch.upstream import read_upstream

    if hub is not None:
        raise ConfigError("--hub is for --config; with a Hub id the id names the upstream",
                          f"drop --hub, or run zoo new --config FILE --hub {hub}")
    if hub_id.count("/") != 1 or not all(hub_id.split("/")):
        raise ConfigError(f"'{hub_id}' is not a Hub model id", "pass namespace/name, e.g. LiquidAI/LFM2-8B-A1B")
    upstream = read_upstream(hub_id, revision or "main", endpoint)
    choice = choose_license(upstream, zoo.licenses, license_id)
    where = Path(f"{upstream.label}/config.json")
    model_id, document = scaffold_config(upstream.config, where, model_id=model_id, hub=hub_id, revision=upstream.sha,
                                         license_id=choice.license_id)
    path = write_recipe(zoo.recipes_dir, model_id, document, origin=f"{hub_id} at commit {upstream.sha}")
    return {"id": model_id, "path": str(path), "hub": hub_id, "revision": upstream.sha,
            "license": choice.license_id, "license_from": choice.evidence}


def _from_file(zoo: Zoo, config: Path, license_id: str | None, model_id: str | None, hub: str | None,
               revision: str | None, endpoint: str | None) -> dict[str, Any]:
    from ..config.scaffold import scaffold, write_recipe

    if license_id is None:
        raise ConfigError("--config needs --license ID (offline, nothing declares it)",
                          f"known: {', '.join(sorted(zoo.licenses))}; or give the Hub id to read the upstream's")
    if endpoint is not None:
        raise ConfigError("--endpoint is for reading a Hub id; --config works offline", "drop one of them")
    model_id, document = scaffold(config, model_id=model_id, hub=hub, revision=revision, license_id=license_id,
                                  known_licenses=list(zoo.licenses))
    path = write_recipe(zoo.recipes_dir, model_id, document)
    return {"id": model_id, "path": str(path)}
