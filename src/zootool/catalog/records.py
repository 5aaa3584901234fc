"""Build records: small committed JSON files that carry a target's latest build and publish.

``zoo/records/<id>/<target>.json`` holds what the catalog (``zoo index``) needs from
``build/``, which is not committed: the plan hash, scheme, kernel, sizes, the gate
verdict, the day it was built, tool versions and, once published, the Hub repo,
commit and tag. Records are published with the zoo, so they carry no local paths,
no user names and no tokens: every field is copied from an allow-list.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

from ..bundle.manifest import Manifest, write_json_atomic
from ..config.recipe import COMMIT_SHA, HUB_REPO, check_model_id
from ..config.zoo_data import Zoo
from ..errors import ConfigError
from ..paths import relative

RECORD_SCHEMA_VERSION = 1
RECORDS_DIR = "records"
TOOLS = ("zootool", "coreai-torch")
SIZE_KEYS = ("estimated_bytes", "model_bytes", "bundle_bytes", "budget_bytes")
GATE_KEYS = ("verdict", "line", "passed", "introduced", "positions")
TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


def record_path(zoo: Zoo, recipe_id: str, target: str) -> Path:
    """Where the record of one target lives; ids are checked so no path escapes ``zoo/records``."""
    try:
        check_model_id(recipe_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not TARGET_NAME.match(target):
        raise ConfigError(f"'{target}' is not a valid target name for a build record")
    return zoo.data_dir / RECORDS_DIR / recipe_id / f"{target}.json"


def read_record(zoo: Zoo, recipe_id: str, target: str) -> dict[str, Any] | None:
    """The record of one target, or None when it was never built; a corrupt record is a ``ConfigError``."""
    path = record_path(zoo, recipe_id, target)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{relative(path, zoo.root)}: unreadable build record ({exc})",
                          "restore it from git, or rebuild the target") from None
    if not isinstance(data, dict) or data.get("schema_version") != RECORD_SCHEMA_VERSION:
        raise ConfigError(f"{relative(path, zoo.root)}: not a schema {RECORD_SCHEMA_VERSION} build record",
                          "restore it from git, or rebuild the target")
    return data


def record_build(zoo: Zoo, manifest: Manifest, *, built: _dt.date | None = None) -> Path:
    """Record a finished build from its bundle ``manifest``; keeps an earlier publish entry.

    ``built`` defaults to today (UTC). Recording the same result again (a reused bundle)
    leaves the file untouched, so the committed record does not churn.
    """
    fields = _build_fields(manifest)
    path = record_path(zoo, fields["recipe"], fields["target"])
    previous = read_record(zoo, fields["recipe"], fields["target"]) or {}
    if previous and all(previous.get(key) == value for key, value in fields.items()):
        return path
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        **fields,
        "built": (built or _today()).isoformat(),
        "publish": previous.get("publish"),
    }
    _refuse_local_paths(record)
    write_json_atomic(path, record)
    return path


def record_publish(
    zoo: Zoo, recipe_id: str, target: str, repo: str, commit: str | None, tag: str | None,
    *, manifest: Manifest | None = None, published: _dt.date | None = None,
) -> Path:
    """Record that the target's latest build is on the Hub at ``repo`` / ``commit`` (and ``tag``).

    ``commit`` may be None when the publish changed nothing: the earlier commit of the
    same repo is kept. Pass the published bundle's ``manifest`` to (re)record its build
    first, e.g. for a bundle built before records existed.
    """
    if manifest is not None:
        if (manifest.recipe, manifest.target) != (recipe_id, target):
            raise ConfigError(f"the manifest is of {manifest.recipe} --target {manifest.target}, "
                              f"not {recipe_id} --target {target}")
        record_build(zoo, manifest)
    record = read_record(zoo, recipe_id, target)
    if record is None:
        raise ConfigError(f"no build record for {recipe_id} --target {target}",
                          f"build it first: zoo build {recipe_id} --target {target}")
    _check_publish(repo, commit, tag)
    earlier = record.get("publish") or {}
    if commit is None and earlier.get("repo") == repo:
        commit = earlier.get("commit")
    record["publish"] = {
        "repo": repo, "commit": commit, "tag": tag,
        # what was published, kept apart from later (unpublished) builds of the target
        "plan_hash": record["plan_hash"], "model_dir": record.get("model_dir"),
        "bundle_bytes": record["size"].get("bundle_bytes"),
        "published": (published or _today()).isoformat(),
    }
    path = record_path(zoo, recipe_id, target)
    write_json_atomic(path, record)
    return path


def _build_fields(manifest: Manifest) -> dict[str, Any]:
    needed = ("recipe", "target", "plan_hash", "scheme", "kernel", "size", "gate")
    missing = [key for key in needed if getattr(manifest, key) is None]
    if missing:
        raise ConfigError(f"bundle manifest lacks {', '.join(missing)}: cannot record the build",
                          "rebuild the target with this zootool")
    size, gate = manifest.size.model_dump(), manifest.gate.model_dump()
    return {
        "recipe": manifest.recipe,
        "target": manifest.target,
        "platform": manifest.platform,
        "plan_hash": manifest.plan_hash,
        "scheme": manifest.scheme,
        "kernel": manifest.kernel,
        "model_dir": manifest.model_dir,
        "size": {key: size.get(key) for key in SIZE_KEYS} | {"bundle_bytes": _bundle_bytes(manifest)},
        "gate": {key: gate.get(key) for key in GATE_KEYS},
        "publishable": manifest.publishable,
        "tools": {name: manifest.tool_versions.get(name, "unknown") for name in TOOLS},
    }


def _bundle_bytes(manifest: Manifest) -> int | None:
    # size.bundle_bytes is measured before the manifest exists; total_bytes is what is published.
    return manifest.total_bytes or manifest.sizes.bundle_bytes


def _check_publish(repo: str, commit: str | None, tag: str | None) -> None:
    if not HUB_REPO.match(repo):
        raise ConfigError(f"'{repo}' is not a Hub repo id of the form 'namespace/name'")
    if commit is not None and not COMMIT_SHA.match(commit):
        raise ConfigError(f"'{commit}' is not a full 40-character commit sha")
    if tag is not None and not TAG_NAME.match(tag):
        raise ConfigError(f"'{tag}' is not a valid tag name")


def _refuse_local_paths(record: dict[str, Any]) -> None:
    """Records are committed and published: a value that looks like a local path is a bug upstream."""
    home = str(Path.home())
    for value in _strings(record):
        if value.startswith(("/", "~")) or (home != "/" and home in value) or "\\" in value:
            raise ConfigError(f"refusing to record '{value}': build records carry no local paths",
                              "the bundle manifest should hold paths relative to the bundle")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _today() -> _dt.date:
    return _dt.datetime.now(_dt.timezone.utc).date()
