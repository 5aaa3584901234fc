"""The Family contract: what every architecture family tells the zoo, from ``config.json`` alone.

A family is one module under ``arch/families/`` defining one typed config class, a
subclass of :class:`ArchConfig`. That class is the single parse of a checkpoint's
``config.json`` (through transformers' own config class, so defaults and legacy keys mean
what transformers says) and the recipe's ``[architecture]`` table (kebab case). From it
come, torch-free:

* its layout (``arch.layout``): every tensor by group, for the size estimate, and the
  blocks ``arch.decoder`` builds the decode graph from;
* its weight-name map (``arch.weight_names``): where each graph tensor is in a checkpoint;
* what ``zoo new`` scaffolds (:class:`Scaffold`: targets, schemes, gate);
* the transformers class the fp32 oracle runs.

``arch.registry`` lists the families, one line each, and finds one by ``model_type``.
"""

from __future__ import annotations

import math

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, Self

from ..config.schema_base import Strict, kebab
from .base import TensorSpec
from .layout import DecoderLayout
from .scaffolds import Scaffold
from .weight_names import Source, WeightNames, checkpoint_tensors, sources


class Family(Protocol):
    """A family as the registry holds it: the class of its typed config."""

    family_tag: str
    model_types: tuple[str, ...]
    causal_lm: Mapping[str, str]
    weight_names: WeightNames
    scaffold: Scaffold

    def from_hf(self, hf: Any) -> ArchConfig: ...

    def model_validate(self, data: Any) -> ArchConfig: ...


class ArchConfig(Strict):
    """Base of every family's typed config (the recipe's ``[architecture]``)."""

    family_tag: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # transformers model_type values this family reads
    causal_lm: ClassVar[Mapping[str, str]]  # model_type -> transformers class the oracle runs
    weight_names: ClassVar[WeightNames]
    scaffold: ClassVar[Scaffold]

    family: str  # each family narrows it to its own tag: the recipe's discriminator
    model_type: str

    @classmethod
    def from_hf(cls, hf: Any) -> Self:
        """The config of a transformers ``PreTrainedConfig`` object; ``ValueError`` if it is not one
        this family can build (the message names the config key)."""
        return cls.model_validate({"family": cls.family_tag, **cls.hf_values(hf)})

    @classmethod
    def hf_values(cls, hf: Any) -> dict[str, Any]:
        """Field values (snake case) read off a transformers config object."""
        raise NotImplementedError

    def to_hf(self) -> dict[str, Any]:
        """``config.json`` contents that transformers reads back as this config."""
        raise NotImplementedError

    def layout(self) -> DecoderLayout:
        raise NotImplementedError

    def tensors(self) -> list[TensorSpec]:
        """Every stored tensor under its graph name, a tied head once (as the estimate counts)."""
        return self.layout().tensors()

    def checkpoint_tensors(self) -> list[TensorSpec]:
        """The tensors as a Hub checkpoint of this family stores them."""
        return checkpoint_tensors(self.tensors(), self.weight_names, self.layout().tied)

    def sources(self) -> dict[str, Source]:
        """Graph tensor name -> where the loader reads it in a checkpoint."""
        return sources(self.tensors(), self.weight_names, self.layout().tied)

    def oracle_class(self) -> str:
        return self.causal_lm[self.model_type]

    def recipe_fields(self) -> dict[str, Any]:
        """The recipe's ``[architecture]`` table (kebab-case keys, TOML-ready)."""
        return _toml_ready(self.model_dump(by_alias=True, exclude_none=True))

    def settings(self) -> dict[str, Any]:
        """Every setting, as compared between a recipe and a checkpoint (defaults written out)."""
        return self.model_dump(exclude_none=False)

    def differences(self, other: ArchConfig) -> list[str]:
        """``key: recipe X, checkpoint Y`` for every setting that differs (``self`` is the recipe)."""
        mine, theirs = self.settings(), other.settings()
        return [
            f"{kebab(key)}: recipe {_shown(mine.get(key))}, checkpoint {_shown(theirs.get(key))}"
            for key in sorted(set(mine) | set(theirs)) if not _same(mine.get(key), theirs.get(key))
        ]


def _same(mine: Any, theirs: Any) -> bool:
    """Equal, floats to float32's precision: a config written from a GGUF file holds 1e-5 as 9.9999997e-06."""
    if isinstance(mine, float) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return math.isclose(mine, theirs, rel_tol=1e-6)
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(_same(mine[key], theirs[key]) for key in mine)
    if isinstance(mine, (list, tuple)) and isinstance(theirs, (list, tuple)):
        return len(mine) == len(theirs) and all(_same(a, b) for a, b in zip(mine, theirs))
    return mine == theirs


def _shown(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _toml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _toml_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_toml_ready(item) for item in value]
    return value
