"""Zoo-wide data read from ``zoo/``: platforms and budgets, quant schemes, kernels, licenses."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..arch.base import TENSOR_GROUPS
from ..errors import ConfigError, RecipeError
from .recipe import GateSettings, PublishSettings, Settings
from .schema_base import (
    INT32_MAX, Array, Count, FieldError, Strict, did_you_mean, read_toml, validate,
)
from .zoo_root import check_root, find_root

# Ids of the registered backends (``backends.registry``), as zoo data and recipes may name them.
BACKENDS = ("coreai", "coremltools")
FP16 = "fp16"
# How Apple spells each platform OS: cards, app metadata targets, Core ML deployment targets.
OS_NAMES = {"ios": "iOS", "ipados": "iPadOS", "macos": "macOS"}
PIPELINES = ("gpu-pipelined-decode",)


class Entitlement(Strict):
    name: str
    above_bytes: int = Field(gt=0)
    why: str


class Platform(Strict):
    """A device class a bundle is built for, with the size budget it must fit."""

    display_name: str
    device: str
    os: Literal["ios", "ipados", "macos"]
    min_os: int = Field(ge=1, le=99)
    compute: Literal["gpu", "ane", "cpu"]
    backends: Annotated[Array[Literal[BACKENDS]], Field(min_length=1)]
    ram_bytes: int = Field(gt=0)
    budget_bytes: int = Field(gt=0)
    budget_reason: str
    # The same floor as a recipe's context-length, which this caps.
    max_context: int | None = Field(default=None, ge=16, le=INT32_MAX)
    entitlement: Entitlement | None = None
    sources: Array[str] = ()

    @model_validator(mode="after")
    def _budget_in_memory(self) -> "Platform":
        if self.budget_bytes > self.ram_bytes:
            raise FieldError("budget-bytes", f"{self.budget_bytes:,} is more than ram-bytes ({self.ram_bytes:,})")
        return self

    @property
    def os_name(self) -> str:
        return OS_NAMES[self.os]


class QuantSpec(Strict):
    """How one tensor group is stored: ``bits`` per weight plus per-block overhead.

    A block is ``block-size`` consecutive weights along K; without ``block-size`` a
    block is a whole output row (e.g. one k-means look-up table per row).
    """

    method: Literal["symmetric", "affine", "kmeans"]
    bits: int = Field(ge=1, le=8)
    block_size: Count | None = None
    scale_bits: int = Field(default=16, ge=0, le=32)
    zero_point_bits: int = Field(default=0, ge=0, le=32)
    lut_bits: int = Field(default=0, ge=0, le=INT32_MAX)
    # symmetric blocks: search each block's scale below its max |w| for the least squared error
    # (backends.coreai.clipping); the stored format, and so the size, is the same
    clip_search: bool = False

    @model_validator(mode="after")
    def _overhead_fits_method(self) -> "QuantSpec":
        if self.method == "kmeans" and not self.lut_bits:
            raise FieldError("lut-bits", "k-means weights need a look-up table: set lut-bits above 0")
        if self.method != "kmeans" and not self.scale_bits:
            raise FieldError("scale-bits", f"{self.method} weights need a scale: set scale-bits above 0")
        if self.clip_search and not (self.method == "symmetric" and self.block_size):
            raise FieldError("clip-search", "a clipping search needs symmetric weights in blocks (block-size)")
        return self


class Scheme(Strict):
    """A quant scheme: a storage format for every tensor group, nothing left implicit.

    The one scheme object: read from ``zoo/schemes.toml``, carried by the plan and handed
    to the backends' quantizers as it is. ``id`` is its key in that file; it names the
    scheme in asset metadata but is not part of what is built (nor of the plan hash).
    """

    id: str = Field(default="", exclude=True)
    summary: str
    quantize: dict[str, QuantSpec] = {}
    keep_fp16: Array[str]
    backends: Annotated[Array[Literal[BACKENDS]], Field(min_length=1)] = BACKENDS

    @model_validator(mode="after")
    def _covers_every_group(self) -> "Scheme":
        named = list(self.quantize) + list(self.keep_fp16)
        unknown = sorted(set(named) - set(TENSOR_GROUPS))
        if unknown:
            raise ValueError(f"unknown tensor group(s) {unknown}; known: {', '.join(TENSOR_GROUPS)}")
        missing = sorted(set(TENSOR_GROUPS) - set(named))
        if missing:
            raise ValueError(f"tensor group(s) {missing} are neither quantized nor kept fp16")
        if len(named) != len(set(named)):
            raise ValueError("a tensor group is both quantized and kept fp16")
        return self

    @classmethod
    def unquantized(cls) -> "Scheme":
        """fp16 everywhere: the gate's quality ceiling."""
        return cls(id=FP16, summary="fp16 weights, no weight quantization", keep_fp16=TENSOR_GROUPS)

    def named(self, scheme_id: str) -> "Scheme":
        return self if self.id == scheme_id else self.model_copy(update={"id": scheme_id})


# What a kernel needs of a model's layout (``arch.layout``), never which families it serves.
KERNEL_NEEDS = ("stacked-experts", "no-experts")


class Kernel(Strict):
    """How MoE experts are multiplied: a composite op or a custom Metal kernel."""

    summary: str
    kind: Literal["composite", "metal"]
    backends: Annotated[Array[Literal[BACKENDS]], Field(min_length=1)]
    # stacked-experts: routed experts stacked [E, N, K] (arch.blocks.moe); no-experts: a dense model.
    needs: Literal[KERNEL_NEEDS]
    schemes: Annotated[Array[str], Field(min_length=1)]
    gpu_only: bool = False
    runs_on_linux: bool = True
    k_multiple: Count | None = None
    n_multiple: Count | None = None
    # Tokens per call a kernel is written for (gather_qmm: 1); None leaves the graph's q dynamic.
    query_len: Count | None = None


HOW_TO_ADD_LICENSE = (
    "add zoo/licenses/{id}.toml (keys: name, hub-license, link, text-file, text-source, optional text-heading; "
    "zoo/licenses/apache-2.0.toml is an example; for a standard license, its text as zoo/licenses/{id}.txt), "
    "review the upstream terms, then run the same command again"
)


def unknown_license_hint(license_id: str, known) -> str:
    """What to do about a license id the zoo does not know: the close or known ids, and the file to add."""
    return f"{did_you_mean(license_id, known)}; or {HOW_TO_ADD_LICENSE.format(id=license_id)}"


class License(Strict):
    name: str
    hub_license: str
    link: str
    text_file: str = "LICENSE"
    text_source: str
    # the first words of the license text, so `zoo new` can recognise an upstream LICENSE file;
    # not something a build depends on, so it stays out of the plan (and its hash)
    text_heading: str | None = Field(default=None, exclude=True)


def zoo_license_text(license_dir: Path, license_id: str) -> Path | None:
    """``zoo/licenses/<id>.txt``: the zoo's copy of a standard license's text (custom licenses have none:
    their bundles ship the upstream's own file)."""
    text = license_dir / f"{license_id}.txt"
    return text if text.is_file() else None


class ZooDefaults(Settings):
    """The first level of the cascade; every field must be set here."""

    @model_validator(mode="after")
    def _complete(self) -> "ZooDefaults":
        for name in ("backend", "pipeline", "quant", "kernel", "context_length", "gate"):
            if getattr(self, name) is None:
                raise ValueError(f"zoo defaults must set '{name.replace('_', '-')}'")
        return self


class Zoo:
    """The ``zoo/`` data directory, read lazily and validated on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "zoo"
        self.recipes_dir = root / "recipes"
        self.cards_dir = root / "cards"

    @cached_property
    def platforms(self) -> dict[str, Platform]:
        return self._table("platforms.toml", "platforms", Platform)

    @cached_property
    def schemes(self) -> dict[str, Scheme]:
        return {key: scheme.named(key) for key, scheme in self._table("schemes.toml", "schemes", Scheme).items()}

    @cached_property
    def kernels(self) -> dict[str, Kernel]:
        return self._table("kernels.toml", "kernels", Kernel)

    @cached_property
    def defaults(self) -> ZooDefaults:
        path = self.data_dir / "zoo.toml"
        data = read_toml(path)
        return validate(ZooDefaults, data.get("defaults", {}), path, ("defaults",))

    @cached_property
    def licenses(self) -> dict[str, License]:
        folder = self.data_dir / "licenses"
        return {p.stem: validate(License, read_toml(p), p) for p in sorted(folder.glob("*.toml"))}

    def _table(self, filename: str, key: str, model: type) -> dict:
        path = self.data_dir / filename
        data = read_toml(path)
        entries = data.get(key)
        if not isinstance(entries, dict) or not entries:
            raise RecipeError(path, key, f"expected a non-empty [{key}.<id>] table")
        return {name: validate(model, value, path, (key, name)) for name, value in entries.items()}


def as_scheme(scheme: Scheme | str) -> Scheme:
    """``scheme`` itself, or the scheme of that id in the zoo this process runs in (found as the CLI finds it)."""
    if isinstance(scheme, Scheme):
        return scheme
    schemes = Zoo(find_root()).schemes
    if scheme not in schemes:
        raise ConfigError(f"unknown scheme {scheme!r}", did_you_mean(scheme, schemes) or "pick a scheme from zoo/schemes.toml")
    return schemes[scheme]


__all__ = ["GateSettings", "PublishSettings", "Zoo", "check_root", "find_root"]
