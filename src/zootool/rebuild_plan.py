"""The plan a built bundle came from: its recipe and target plus the command-line overrides it recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import VerifyError
from .plan import BuildPlan, resolve
from .recipe import Settings
from .registry import get
from .zoo_data import Zoo


def plan_of(zoo: Zoo, manifest: dict[str, Any], bundle: Path) -> BuildPlan:
    """Re-resolve the bundle's plan; a recipe changed since the build is an error."""
    if "recipe" not in manifest or "target" not in manifest:
        raise VerifyError(f"{bundle}/manifest.json: names no recipe and target", "rebuild the bundle with zoo build")
    recipe, path = get(zoo, manifest["recipe"])
    recorded = dict(manifest.get("overrides") or {})
    revision = recorded.pop("source.revision", None)
    plan = resolve(recipe, manifest["target"], zoo, recipe_file=str(path),
                   overrides=Settings(**recorded) if recorded else None, revision=revision)
    if plan.plan_hash != manifest.get("plan_hash"):
        raise VerifyError(
            f"{bundle}: built from plan {manifest.get('plan_hash')}, the recipe now resolves to {plan.plan_hash}",
            f"rebuild: zoo build {manifest['recipe']} --target {manifest['target']}",
        )
    return plan
