"""Find recipes in the zoo and load them by id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownModelError, ZooError
from .recipe import Recipe, check_model_id, load_recipe
from .schema_base import did_you_mean
from .zoo_data import Zoo


def recipe_paths(zoo: Zoo) -> dict[str, Path]:
    """Model id -> recipe file, for every ``recipes/*.toml``."""
    return {path.stem: path for path in sorted(zoo.recipes_dir.glob("*.toml"))}


def get(zoo: Zoo, model_id: str) -> tuple[Recipe, Path]:
    """Load one recipe by model id; unknown ids get a "did you mean"."""
    paths = recipe_paths(zoo)
    if model_id not in paths:
        try:
            check_model_id(model_id)
        except ValueError as exc:
            raise UnknownModelError(str(exc)) from None
        hint = did_you_mean(model_id, paths) or "the zoo has no recipes yet: `zoo new --config config.json`"
        raise UnknownModelError(f"no recipe '{model_id}' in {zoo.recipes_dir}", hint)
    path = paths[model_id]
    return load_recipe(path), path


def load_all(zoo: Zoo) -> list[tuple[Recipe, Path]]:
    return [(load_recipe(path), path) for path in recipe_paths(zoo).values()]


def resolve_all(zoo: Zoo, display: Callable[[Path], str]) -> tuple[list[Any], list[ZooError]]:
    """Plans of every recipe x target, and the errors of those that do not resolve (kept going)."""
    from ..plan.resolve import resolve

    plans, errors = [], []
    for path in recipe_paths(zoo).values():
        try:
            recipe = load_recipe(path)
            plans += [resolve(recipe, t, zoo, recipe_file=display(path)) for t in recipe.targets]
        except ConfigError as exc:
            errors.append(exc)
    return plans, errors
