"""The plan a built bundle came from: its ``plan.json``, checked against what the recipe resolves to now."""

from __future__ import annotations

from pathlib import Path

from ..bundle.manifest import Manifest
from ..config.recipe import Settings
from ..config.registry import get
from ..config.zoo_data import Zoo
from ..errors import VerifyError
from .resolve import PLAN_FILE, BuildPlan, resolve

REBUILD_HINT = "rebuild the bundle with zoo build"


def plan_of(zoo: Zoo, manifest: Manifest, bundle: Path) -> BuildPlan:
    """The bundle's recorded plan; a recipe changed since the build is an error."""
    if manifest.recipe is None or manifest.target is None:
        raise VerifyError(f"{bundle}/manifest.json: names no recipe and target", REBUILD_HINT)
    plan = recorded_plan(bundle) if (bundle / PLAN_FILE).is_file() else _resolved(zoo, manifest)
    if plan.plan_hash != manifest.plan_hash:
        raise VerifyError(f"{bundle}/{PLAN_FILE}: plan {plan.plan_hash} is not the manifest's {manifest.plan_hash}",
                          REBUILD_HINT)
    current = _resolve(zoo, plan.recipe_id, plan.target, plan.overrides).plan_hash
    if current != plan.plan_hash:
        raise VerifyError(
            f"{bundle}: built from plan {plan.plan_hash}, the recipe now resolves to {current}",
            f"rebuild: zoo build {plan.recipe_id} --target {plan.target}",
        )
    return plan


def recorded_plan(bundle: Path) -> BuildPlan:
    """``plan.json`` as the build wrote it."""
    try:
        return BuildPlan.model_validate_json((bundle / PLAN_FILE).read_bytes())
    except OSError:
        raise VerifyError(f"{bundle}: no {PLAN_FILE}", REBUILD_HINT) from None
    except ValueError as exc:
        raise VerifyError(f"{bundle}/{PLAN_FILE}: not a build plan ({type(exc).__name__})", REBUILD_HINT) from None


def _resolved(zoo: Zoo, manifest: Manifest) -> BuildPlan:
    """A bundle built before plans were recorded: its plan as the recipe resolves it now."""
    plan = _resolve(zoo, manifest.recipe, manifest.target, manifest.overrides)
    if plan.plan_hash != manifest.plan_hash:
        raise VerifyError(
            f"{manifest.recipe} --target {manifest.target}: built from plan {manifest.plan_hash}, the recipe now resolves to {plan.plan_hash}",
            f"rebuild: zoo build {manifest.recipe} --target {manifest.target}",
        )
    return plan


def _resolve(zoo: Zoo, recipe_id: str, target: str, overrides: dict) -> BuildPlan:
    """The recipe's plan today, with the command-line overrides a build had."""
    recipe, path = get(zoo, recipe_id)
    given = dict(overrides)
    revision = given.pop("source.revision", None)
    settings = Settings(**given) if given else None
    return resolve(recipe, target, zoo, recipe_file=str(path), overrides=settings, revision=revision)
