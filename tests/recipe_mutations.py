"""Malformed variants of a recipe, each of which zootool must refuse (exit 2, file named).

Every generator takes the recipe's text and parsed document and yields
``(description, file bytes)``. Values are chosen so that each variant is invalid
whatever the key: a string where a number goes, a negative size, a missing key the
schema requires. Keys are found by walking the document, never listed by hand.
"""

from __future__ import annotations

import copy
import math
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import tomli_w

from zootool.arch.registry import FAMILIES
from zootool.config.recipe import Recipe

Variant = tuple[str, bytes]
Path_ = tuple[str, ...]
# Keys whose ranges include zero (a seed, a margin, a count that may be none).
ZERO_ALLOWED = {"seed", "margin", "max-introduced-flips", "num-dense-layers"}
DEEP = 5000


def dumps(doc: dict[str, Any]) -> bytes:
    return tomli_w.dumps(doc).encode()


def walk(doc: dict[str, Any], path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) below ``doc``, tables included, depth first."""
    for key, value in doc.items():
        yield path + (key,), value
        if isinstance(value, dict):
            yield from walk(value, path + (key,))


def replaced(doc: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    parent = new
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return new


_DELETE = object()


def leaves(doc: dict[str, Any]) -> Iterator[tuple[Path_, Any]]:
    for path, value in walk(doc):
        if not isinstance(value, dict):
            yield path, value


def _wrong_values(value: Any) -> list[Any]:
    """Values of other TOML types than ``value``; an int is never offered for a float."""
    if isinstance(value, bool):
        return ["yes", 1, [True]]
    if isinstance(value, int):
        return [str(value), True, 2.5, [value], {"value": value}]
    if isinstance(value, float):
        return [str(value), True, [value], {"value": value}]
    if isinstance(value, str):
        return [5, True, [value], {"value": value}]
    if isinstance(value, list):
        return ["x", 3, {"value": 1}, [*value, {"nested": 1}]]
    raise TypeError(value)


def wrong_types(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    for path, value in leaves(doc):
        for wrong in _wrong_values(value):
            yield f"{'.'.join(path)} = {wrong!r}", dumps(replaced(doc, path, wrong))


def out_of_range(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    for path, value in leaves(doc):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, int):
            bad: list[Any] = [-1, -(2**63), 2**63 - 1]
        else:
            bad = [-1.0, math.nan, math.inf, -math.inf]
        if path[-1] not in ZERO_ALLOWED:
            bad.append(type(value)(0))
        for number in bad:
            yield f"{'.'.join(path)} = {number!r}", dumps(replaced(doc, path, number))


def model_at(doc: dict[str, Any], path: Path_) -> Any:
    """The pydantic model that validates the table at ``path`` (None below a plain dict)."""
    model: Any = Recipe
    table: Any = doc
    for key in path:
        table = table[key]
        if isinstance(model, _DictOf):
            model = model.item
            continue
        field = next(f for name, f in model.model_fields.items() if key in (name, f.alias))
        model = _pick(field.annotation, table)
    return model


class _DictOf(typing.NamedTuple):
    item: Any


def _pick(annotation: Any, table: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is dict:
        return _DictOf(_pick(typing.get_args(annotation)[1], table))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_pick(m, table) for m in typing.get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return members[0]
        if "family" in table:
            return FAMILIES[table["family"]]
        return next(m for m in members if getattr(m, "source_tag", None) in table)
    return annotation


def required_keys(model: Any) -> set[str]:
    if isinstance(model, _DictOf) or not hasattr(model, "model_fields"):
        return set()
    return {field.alias or name for name, field in model.model_fields.items() if field.is_required()}


def missing_keys(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    tables = [((), doc)] + [(p, v) for p, v in walk(doc) if isinstance(v, dict)]
    for path, table in tables:
        required = required_keys(model_at(doc, path)) & set(table)
        for key in sorted(required):
            yield f"no {'.'.join(path + (key,))}", dumps(replaced(doc, path + (key,), _DELETE))
        if required and path:
            yield f"{'.'.join(path)} = {{}}", dumps(replaced(doc, path, {}))


def unknown_keys(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    tables = [((), doc)] + [(p, v) for p, v in walk(doc) if isinstance(v, dict)]
    for path, table in tables:
        if isinstance(model_at(doc, path), _DictOf):
            continue  # keys of [targets] are names, any of which may be new
        yield f"{'.'.join(path + ('not-a-key',))} = 1", dumps(replaced(doc, path + ("not-a-key",), 1))
        for key in table:
            misspelt = replaced(doc, path + (key + "x",), table[key])
            yield f"{'.'.join(path + (key,))} misspelt", dumps(replaced(misspelt, path + (key,), _DELETE))


def bad_nesting(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    for path, value in walk(doc):
        if isinstance(value, dict) and value and not isinstance(model_at(doc, path[:-1]), _DictOf):
            yield f"{'.'.join(path)} nested in itself", dumps(replaced(doc, path, {path[-1]: value}))
            yield f"{'.'.join(path)} as an array of tables", dumps(replaced(doc, path, [value]))
    for opening, closing in (("[", "]"), ("{ a = ", " }")):
        yield f"{opening.strip()} nested {DEEP} deep", (text + "\ndeep = " + opening * DEEP + "1" * (
            opening == "{ a = ") + closing * DEEP + "\n").encode()
        yield f"description = {opening.strip()} nested 200 deep", re.sub(
            r"(?m)^description = .*$", "description = " + opening * 200 + "1" * (opening == "{ a = ") + closing * 200,
            text, count=1).encode()


def truncated(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    """Cut inside a line, where no prefix of the line is valid TOML."""
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and len(stripped) > 3:
            yield f"cut in {stripped}", text[: offset + line.index("[") + 3].encode()
        elif " = " in line and not stripped.startswith("#"):
            cut = offset + line.index(" = ") + 3
            yield f"cut after {line[:cut - offset].strip()}", text[:cut].encode()
        offset += len(line)


def bad_encodings(text: str, doc: dict[str, Any]) -> Iterator[Variant]:
    accented = text.replace('\nname = "', '\nname = "Caf\u00e9 ', 1)
    yield "latin-1 bytes", accented.encode("latin-1")
    yield "UTF-16", text.encode("utf-16")
    yield "byte order mark", b"\xef\xbb\xbf" + text.encode()
    yield "NUL byte", text.replace("\n", "\n\0", 1).encode()
    yield "empty file", b""


GENERATORS = {
    "wrong types": wrong_types,
    "out of range": out_of_range,
    "missing keys": missing_keys,
    "unknown keys": unknown_keys,
    "bad nesting": bad_nesting,
    "truncated": truncated,
    "bad encoding": bad_encodings,
}
