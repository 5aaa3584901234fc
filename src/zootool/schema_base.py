"""Shared pydantic base and the translation of validation errors into ``RecipeError``.

Recipes and zoo data files are TOML with kebab-case keys; every model here is
strict (``extra="forbid"``) and frozen so a plan built from them is hashable.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import RecipeError


def kebab(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    """Frozen, unknown-key-refusing model read from kebab-case TOML."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=kebab, populate_by_name=True
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; syntax errors keep their line and column."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise RecipeError(path, None, "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"invalid TOML: {exc}", "fix the syntax at that line and column") from None


def validate(model: type[BaseModel], data: Any, path: Path, prefix: tuple[str, ...] = ()) -> Any:
    """Validate ``data`` against ``model``; the first problem becomes a one-line ``RecipeError``.

    ``prefix`` is the dotted location of ``data`` inside its file, for the message.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise to_recipe_error(model, exc, path, prefix) from None


def to_recipe_error(
    model: type[BaseModel], exc: ValidationError, path: Path, prefix: tuple[str, ...] = ()
) -> RecipeError:
    errors = _explained_first(exc.errors(include_url=False))
    first = errors[0]
    loc = tuple(str(part) for part in first["loc"])
    shown = toml_keys(model, loc)
    if first["type"] == "union_tag_invalid":
        shown += (first["ctx"]["discriminator"].strip("'"),)
    key = ".".join(prefix + shown) or None
    message, hint = _describe(model, first, loc)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return RecipeError(path, key, message, hint)


def _explained_first(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unknown keys first; a missing key that a misspelt sibling explains is dropped."""
    extras = [e for e in errors if e["type"] == "extra_forbidden"]
    explained = set()
    for extra in extras:
        parent, word = tuple(extra["loc"][:-1]), str(extra["loc"][-1])
        siblings = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and tuple(e["loc"][:-1]) == parent]
        for match in difflib.get_close_matches(word, siblings, n=1, cutoff=0.6):
            explained.add(parent + (match,))
    rest = [e for e in errors if e["type"] != "extra_forbidden" and tuple(e["loc"]) not in explained]
    return extras + rest


def _describe(model: type[BaseModel], error: dict[str, Any], loc: tuple[str, ...]) -> tuple[str, str | None]:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = known_keys(model, loc[:-1])
        return f"unknown key '{loc[-1]}'", did_you_mean(loc[-1], known)
    if kind == "missing":
        return "required key is missing", f"add '{loc[-1]}' there"
    if kind == "union_tag_invalid":
        ctx = error["ctx"]
        return f"unknown {ctx['discriminator'].strip(chr(39))} '{ctx['tag']}'", f"known: {ctx['expected_tags']}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message, FIX_VALUE


FIX_VALUE = "fix this value (`zoo schema` prints every recipe key and its type)"


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str | None:
    """A "did you mean" hint, or a list of the valid choices when nothing is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if choices:
        return "known: " + ", ".join(choices)
    return None


def known_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The keys accepted at a location, following nested models, dicts and tagged unions."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    return _aliases(current)


def toml_keys(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[str, ...]:
    """``loc`` without the union tags pydantic inserts: the keys as written in the file."""
    current: Any = model
    keys = []
    for part in loc:
        members = _union_members(_unwrap(current)) if current is not None else []
        if not any(_tag(option) == part for option in members):
            keys.append(part)
        current = _step(current, part) if current is not None else None
    return tuple(keys)


def _tag(option: Any) -> str | None:
    return getattr(option, "family_tag", None) or getattr(option, "source_tag", None)


def _aliases(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [field.alias or name for name, field in annotation.model_fields.items()]
    return []


def _step(annotation: Any, part: str) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    for option in _union_members(annotation):
        if _tag(option) == part:
            return option
    return None


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [_unwrap(arg) for arg in typing.get_args(annotation)]
    return []
