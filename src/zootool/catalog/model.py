"""The zoo catalog as data: every recipe x target, its resolved plan joined with its build record.

``index.py`` renders it as markdown; this module also gives the two JSON shapes apps
and the existing zoo read: the zoo's ``models/index.json`` entries and CoreAIKit
catalog entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle.layout import PIPELINE_DIR, asset_name
from ..config.recipe import PUBLIC_HUB, Recipe
from ..config.registry import load_all
from ..config.zoo_data import Zoo
from ..paths import relative
from ..plan.resolve import BuildPlan, resolve
from .records import read_record

KIND = "llm"  # the only kind package.app_metadata writes today
COREAIKIT_BACKEND = "coreai"  # CoreAIKit loads Core AI bundles; Core ML packages are not its catalog's
VARIANT_KEY = {"macos": "macos", "ios": "ios", "ipados": "ios"}  # CoreAIKit knows macos and ios variants
NOT_GATED = "NOT GATED"


@dataclass(frozen=True)
class TargetRow:
    """One target of one recipe: the plan resolved now and the record of its latest build."""

    plan: BuildPlan
    record: dict[str, Any] | None

    @property
    def publish(self) -> dict[str, Any] | None:
        return (self.record or {}).get("publish")

    @property
    def status(self) -> str:
        """over-budget, planned, outdated (built from another plan), published, gate-failed or built."""
        record = self.record
        if not self.plan.budget.fits:
            return "over-budget"
        if record is None:
            return "planned"
        if record["plan_hash"] != self.plan.plan_hash:
            return "outdated"
        if self.publish and self.publish.get("plan_hash") == record["plan_hash"]:
            return "published"
        return "gate-failed" if record["gate"].get("verdict") == "FAIL" else "built"

    @property
    def hub_repo(self) -> str | None:
        return (self.publish or {}).get("repo") or self.plan.publish_repo

    @property
    def bundle_path(self) -> str:
        """The bundle folder inside the Hub repo (``gpu-pipelined/<name>``)."""
        if self.record and self.record.get("model_dir"):
            return self.record["model_dir"]
        return f"{PIPELINE_DIR}/{asset_name(self.plan.model_name, self.plan.scheme_id)}"

    @property
    def revision(self) -> str | None:
        """The pinned Hub revision of the published bundle: its commit, else its tag."""
        publish = self.publish or {}
        return publish.get("commit") or publish.get("tag")

    @property
    def gate_transcript(self) -> str | None:
        """URL of the published ``gate.json``; None until a gated build is published."""
        if not self.revision or (self.record or {}).get("gate", {}).get("verdict") == NOT_GATED:
            return None
        return f"{PUBLIC_HUB}/{self.publish['repo']}/blob/{self.revision}/gate.json"


@dataclass(frozen=True)
class ModelEntry:
    """A recipe, the repo-relative path of its file, and its targets sorted by name."""

    recipe: Recipe
    recipe_file: str
    rows: tuple[TargetRow, ...]


def catalog(zoo: Zoo) -> list[ModelEntry]:
    """Every recipe (sorted by id) with every target resolved and joined with its record."""
    entries = []
    for recipe, path in load_all(zoo):
        recipe_file = relative(path, zoo.root, outside=Path(path).name)
        rows = tuple(
            TargetRow(resolve(recipe, target, zoo, recipe_file=recipe_file), read_record(zoo, recipe.id, target))
            for target in sorted(recipe.targets)
        )
        entries.append(ModelEntry(recipe, recipe_file, rows))
    return sorted(entries, key=lambda entry: entry.recipe.id)


def zoo_models(entries: list[ModelEntry]) -> list[dict[str, Any]]:
    """The zoo's ``models/index.json`` entries, one per recipe x target (each has its own repo).

    ``recipe`` and ``target`` are added to the zoo's six keys so an entry can be traced back.
    """
    return [
        {
            "name": asset_name(row.plan.model_name, row.plan.scheme_id),
            "status": row.status,
            "source_model": getattr(row.plan.source, "hub", None),
            "hf_repo": row.hub_repo,
            "bundle": row.bundle_path,
            "gate_transcript": row.gate_transcript,
            "recipe": entry.recipe.id,
            "target": row.plan.target,
        }
        for entry in entries
        for row in entry.rows
    ]


def coreaikit_models(entries: list[ModelEntry]) -> list[dict[str, Any]]:
    """CoreAIKit catalog entries: published Core AI targets only, grouped by repo and revision.

    Targets published to one repo at one revision become variants of one entry; an entry
    needs a pinned revision, so a publish with neither commit nor tag is left out.
    """
    result = []
    for entry in entries:
        groups = _variant_groups([r for r in entry.rows if r.revision and r.plan.backend == COREAIKIT_BACKEND])
        for rows in groups:
            result.append(_coreaikit_entry(entry, rows, single=len(groups) == 1))
    return result


def _variant_groups(rows: list[TargetRow]) -> list[list[TargetRow]]:
    groups: list[list[TargetRow]] = []
    for row in rows:
        home = next((g for g in groups if _joins(g, row)), None)
        home.append(row) if home is not None else groups.append([row])
    return groups


def _joins(group: list[TargetRow], row: TargetRow) -> bool:
    first = group[0]
    taken = {VARIANT_KEY[r.plan.platform.os] for r in group}
    return (first.publish["repo"], first.revision) == (row.publish["repo"], row.revision) and (
        VARIANT_KEY[row.plan.platform.os] not in taken
    )


def _coreaikit_entry(entry: ModelEntry, rows: list[TargetRow], single: bool) -> dict[str, Any]:
    suffix = "" if single else "-" + "-".join(row.plan.target for row in rows)
    return {
        "id": entry.recipe.id + suffix,
        "name": entry.recipe.model.name,
        "repo": rows[0].publish["repo"],
        "revision": rows[0].revision,
        "kind": KIND,
        "variants": {
            VARIANT_KEY[row.plan.platform.os]: {
                "path": row.publish.get("model_dir") or row.bundle_path,
                "sizeMB": _size_mb(row.publish.get("bundle_bytes") or row.record["size"]["bundle_bytes"]),
            }
            for row in rows
        },
    }


def _size_mb(size: int | None) -> int | None:
    # Whole megabytes: an app decoding sizeMB as an integer must not choke on a fraction.
    return None if size is None else max(1, round(size / 1e6))
