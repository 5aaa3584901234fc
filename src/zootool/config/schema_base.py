"""Shared pydantic base and the translation of validation errors into ``RecipeError``.

Recipes and zoo data files are TOML with kebab-case keys; every model here is
strict (``extra="forbid"``) and frozen so a plan built from them is hashable.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict as StrictType, ValidationError

from ..errors import RecipeError


def kebab(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    """Frozen, unknown-key-refusing model read from kebab-case TOML.

    TOML values are typed, so nothing is coerced: ``"256"`` is not a size and ``1``
    is not ``true``. ``nan`` and ``inf`` are valid TOML floats but no valid setting.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=kebab, populate_by_name=True,
        strict=True, allow_inf_nan=False,
    )


Item = TypeVar("Item")
# TOML arrays arrive as lists; models keep tuples so that plans stay hashable.
Array = Annotated[tuple[Item, ...], StrictType(False)]

# Tensor dimensions, token ids and positions are int32 in the exported graphs.
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(ge=1, le=INT32_MAX)]
"""A size, a count of heads, experts or positions: at least 1, int32."""
# The planner lists every layer's tensors, so the layer count bounds its memory; published
# decoders have at most a few hundred layers.
MAX_LAYERS = 1024


class FieldError(ValueError):
    """A rule across fields, broken at one of them: the error names that key.

    Raise it from a model validator with the offending field's dotted TOML key,
    e.g. ``FieldError("num-key-value-heads", "must divide num-attention-heads (16)")``.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = tuple(key.split("."))


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; any unreadable file is a ``RecipeError`` naming it.

    Syntax errors keep their line and column.
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise RecipeError(path, None, "file not found", "check the path (a dangling link?)") from None
    except IsADirectoryError:
        raise RecipeError(path, None, "is a directory, not a TOML file", "remove it or rename it") from None
    except OSError as exc:
        raise RecipeError(path, None, f"cannot be read: {exc.strerror}", "make it a readable file") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(
            path, None, f"not UTF-8 text (byte {exc.start}: {exc.reason})", "save the file as UTF-8"
        ) from None
    except RecursionError:
        raise RecipeError(
            path, None, "values are nested too deeply to read", "recipes nest tables and arrays a few levels deep"
        ) from None
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
    loc = tuple(first["loc"]) + _field_error_key(first)
    shown = toml_keys(model, loc)
    if first["type"] == "union_tag_invalid":
        shown += (first["ctx"]["discriminator"].strip("'"),)
    key = ".".join(prefix + shown) or None
    message, hint = _describe(model, first, loc)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return RecipeError(path, key, message, hint)


def _field_error_key(error: dict[str, Any]) -> tuple[str, ...]:
    cause = error.get("ctx", {}).get("error")
    return cause.key if isinstance(cause, FieldError) else ()


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
    if kind in ARRAY_MESSAGES:
        return ARRAY_MESSAGES[kind].format(**error.get("ctx", {})), FIX_VALUE
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message, FIX_VALUE


# pydantic speaks of tuples; a recipe holds TOML arrays.
ARRAY_MESSAGES = {
    "tuple_type": "Input should be an array",
    "too_short": "needs at least {min_length} item(s), has {actual_length}",
    "too_long": "takes at most {max_length} item(s), has {actual_length}",
}
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


def toml_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[str, ...]:
    """``loc`` as written in the file: no union tags, array indexes as ``key[i]``."""
    current: Any = model
    keys: list[str] = []
    for part in loc:
        if isinstance(part, int) and keys:
            keys[-1] += f"[{part}]"
            continue
        part = str(part)
        members = _union_members(_unwrap(current)) if current is not None else []
        if part != "[key]" and not any(_tag(option) == part for option in members):
            keys.append(part if BARE_KEY.match(part) else json.dumps(part))
        current = _step(current, part) if current is not None else None
    return tuple(keys)


BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


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
