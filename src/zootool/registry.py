"""Find recipes in the zoo and load them by id."""

from __future__ import annotations

from pathlib import Path

from .errors import UnknownModelError
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
