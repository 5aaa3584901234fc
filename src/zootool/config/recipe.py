"""The recipe: one strict, declarative TOML file per zoo model.

Settings that a plan needs (backend, scheme, kernel, gate, publish) share
one shape, ``Settings``, at every level of the cascade: zoo defaults, the
recipe's ``[defaults]``, one ``[targets.<name>]`` table, and CLI overrides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from ..arch import Architecture
from ..errors import RecipeError
from .schema_base import INT32_MAX, Array, Strict, read_toml, validate

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
PUBLIC_HUB = "https://huggingface.co"
HUB_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def check_model_id(value: str) -> str:
    """Model ids name files and Hub paths: lowercase, no separators, no ``..``."""
    return _check_slug(value, "model id")


def check_target_name(value: str) -> str:
    """Target names become ``build/<id>/<target>/`` and bundle versions: the model id rule."""
    return _check_slug(value, "target name")


def _check_slug(value: str, what: str) -> str:
    if not MODEL_ID.match(value) or ".." in value:
        raise ValueError(
            f"'{value}' is not a valid {what} (lowercase letters, digits, '.', '-', '_'; "
            "no '/', no '..')"
        )
    return value


def check_file_name(value: str) -> str:
    """Names that become one file or folder name: no separators, nothing hidden, no control characters."""
    unsafe = any(c in "/\\" or ord(c) < 32 for c in value)
    if unsafe or value != value.strip() or not value or value.startswith("."):
        raise ValueError(
            f"{value!r} is not a plain file name (no '/', '\\', control characters, leading '.' or "
            "surrounding spaces)"
        )
    return value


ModelId = Annotated[str, AfterValidator(check_model_id)]
TargetName = Annotated[str, AfterValidator(check_target_name)]
FileName = Annotated[str, AfterValidator(check_file_name)]


class HubSource(Strict):
    """An upstream checkpoint on the Hugging Face Hub, pinned to a commit."""

    source_tag: ClassVar[str] = "hub"
    hub: str
    revision: str | None = None

    @field_validator("hub")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not HUB_REPO.match(value):
            raise ValueError(f"'{value}' is not a Hub repo id of the form 'namespace/name'")
        return value

    @field_validator("revision")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not COMMIT_SHA.match(value):
            raise ValueError(f"'{value}' is not a full 40-character commit sha (branches move; pin a commit)")
        return value


class GeneratedSource(Strict):
    """A checkpoint zootool generates itself: seeded random weights of the real architecture."""

    source_tag: ClassVar[str] = "generate"
    generate: Literal["random"]
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    # Larger than transformers' 0.02 so every layer moves the logits and the gate has teeth;
    # above 1 random fp16 activations overflow within a few layers.
    init_std: float = Field(default=0.02, gt=0, le=1)


def _source_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "hub" if "hub" in value else "generate" if "generate" in value else None
    return "hub" if isinstance(value, HubSource) else "generate" if isinstance(value, GeneratedSource) else None


Source = Annotated[
    Union[Annotated[HubSource, Tag("hub")], Annotated[GeneratedSource, Tag("generate")]],
    Discriminator(
        _source_kind,
        custom_error_type="source_kind",
        custom_error_message="source needs either 'hub' (with 'revision') or 'generate'",
    ),
]


class ModelInfo(Strict):
    id: ModelId
    # The display name is also the stem of the bundle's asset folder and files.
    name: FileName
    description: str = ""
    source: Source
    license: str
    license_file: FileName = "LICENSE"
    card: FileName = "llm"
    tags: Array[str] = ()
    # What was measured or published of this model that its users should read, each with its source
    # (the card prints them; a card says nothing of a model that was not found of that model).
    card_notes: Array[str] = ()


class GateSettings(Strict):
    margin: float | None = Field(default=None, ge=0)
    max_introduced_flips: int | None = Field(default=None, ge=0, le=INT32_MAX)
    positions: int | None = Field(default=None, ge=1, le=INT32_MAX)


class PublishSettings(Strict):
    repo: str | None = None
    private: bool | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value is not None and not HUB_REPO.match(value):
            raise ValueError(f"'{value}' is not a Hub repo id of the form 'namespace/name'")
        return value


class Settings(Strict):
    """One level of the override cascade; ``None`` means "inherit"."""

    backend: str | None = None
    pipeline: str | None = None
    quant: str | None = None
    kernel: str | None = None
    context_length: int | None = Field(default=None, ge=16, le=INT32_MAX)
    gate: GateSettings | None = None
    publish: PublishSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_chunks(cls, data: Any) -> Any:
        if isinstance(data, dict) and "chunks" in data:
            raise ValueError(
                "'chunks' was removed: a bundle is one asset, since no engine can chain layer-range "
                "chunks; delete the key"
            )
        return data


class Target(Settings):
    """A ``[targets.<name>]`` table: settings plus the platform it builds for."""

    platform: str | None = None


class Recipe(Strict):
    schema_: Literal[1] = Field(alias="schema")
    model: ModelInfo
    architecture: Architecture
    defaults: Settings = Settings()
    targets: dict[TargetName, Target] = Field(min_length=1)

    @field_validator("schema_", mode="before")
    @classmethod
    def _schema_is_a_number(cls, value: Any) -> Any:
        # Literal[1] alone takes `true`, which equals 1 in Python.
        if isinstance(value, bool):
            raise ValueError("Input should be 1")
        return value

    @property
    def id(self) -> str:
        return self.model.id


def load_recipe(path: Path) -> Recipe:
    """Read and validate one recipe file; the file name must be ``<model.id>.toml``."""
    recipe: Recipe = validate(Recipe, read_toml(path), path)
    if path.stem != recipe.id:
        raise RecipeError(
            path, "model.id", f"'{recipe.id}' does not match the file name '{path.name}'",
            f"rename the file to '{recipe.id}.toml' or change model.id to '{path.stem}'",
        )
    return recipe
