"""Resolve a recipe and a target into a frozen, hashable ``BuildPlan``.

Override order, lowest first (one function, ``cascade``, applies it):

1. zoo defaults        ``zoo/zoo.toml [defaults]``
2. recipe defaults     ``recipes/<id>.toml [defaults]``
3. the target table    ``recipes/<id>.toml [targets.<name>]``
4. command line        ``--quant``, ``--kernel``, ``--context-length``, ...

Nested tables (``gate``, ``publish``) merge key by key. ``resolve`` touches no disk
beyond the already-loaded ``Zoo`` and no network.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from ..arch import Architecture
from ..backends.registry import backend, scheme_refusal
from ..config.recipe import COMMIT_SHA, GeneratedSource, HubSource, Recipe, Settings
from ..config.schema_base import did_you_mean
from ..config.zoo_data import BACKENDS, PIPELINES, Kernel, License, Platform, Scheme, Zoo, unknown_license_hint
from ..errors import ConfigError, RecipeError, UnknownTargetError
from .estimate import SizeEstimate, estimate
from .footprint import ResourceEstimate, resource_estimate
from .choices import usable_schemes
from .gate_runtime import GateRuntime, gate_runtime_of

NESTED = ("gate", "publish")
CLI = "command line"
PLAN_FILE = "plan.json"
# Not part of what is built: provenance, the predicted machine needs (re-measured constants),
# the card's prose, and the command line's values (already in the fields they set).
# gate_runtime follows from the hashed fields (plan.gate_runtime); it changes no bundle byte.
UNHASHED = frozenset({"origins", "resources", "description", "tags", "card_notes", "overrides", "gate_runtime"})


class Origin(BaseModel):
    """Where a resolved setting came from: a file and dotted key, or a CLI flag."""

    model_config = ConfigDict(frozen=True)
    file: str
    key: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}"


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True)

    budget_bytes: int
    estimated_bytes: int
    fits: bool
    entitlement: str | None


class BuildPlan(BaseModel):
    """Everything a build needs, resolved; its hash names the build."""

    model_config = ConfigDict(frozen=True)

    recipe_id: str
    model_name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    card_notes: tuple[str, ...] = ()  # what is known of this model that its card tells users (model.card-notes)
    target: str
    platform_id: str
    platform: Platform
    backend: str
    pipeline: str
    scheme_id: str
    scheme: Scheme
    kernel_id: str
    kernel: Kernel
    context_length: int
    gate_margin: float
    gate_max_introduced_flips: int
    gate_positions: int
    gate_runtime: GateRuntime = "engine"  # how the gate runs its sides on Linux (plan.gate_runtime)
    publish_repo: str | None
    publish_private: bool
    source: HubSource | GeneratedSource
    license_id: str
    license: License
    card: str
    architecture: Architecture
    estimate: SizeEstimate
    budget: Budget
    resources: ResourceEstimate
    # What the command line changed (dotted key -> value), so a rebuild can resolve the same plan.
    overrides: dict[str, Any] = {}
    origins: dict[str, Origin] = {}

    @property
    def plan_hash(self) -> str:
        """sha256 of the canonical plan; the fields in ``UNHASHED`` do not change it."""
        payload = self.model_dump_json(exclude=set(UNHASHED))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _scheme_named(self) -> "BuildPlan":
        # plan.json leaves the scheme's id out (it is not hashed); scheme_id is the same name.
        if self.scheme.id != self.scheme_id:
            object.__setattr__(self, "scheme", self.scheme.named(self.scheme_id))
        return self

    def source_fields(self) -> dict[str, Any]:
        """The source as manifests and gate transcripts record it: Hub repo and revision, or a seed."""
        return {"hub": getattr(self.source, "hub", None), "revision": getattr(self.source, "revision", None),
                "generated_seed": getattr(self.source, "seed", None)}

    def to_json(self) -> dict[str, Any]:
        """``plan.json`` of a bundle: the plan without origins (they hold local recipe paths)."""
        return self.model_dump(mode="json", exclude={"origins"})

    def summary(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["plan_hash"] = self.plan_hash
        return data


def cascade(levels: list[tuple[Settings, str, str]]) -> tuple[dict[str, Any], dict[str, Origin]]:
    """Merge settings levels (lowest first) given as (settings, file, key prefix)."""
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for settings, file, prefix in levels:
        for name, value in settings.model_dump(exclude_none=True, exclude={"platform"}).items():
            items = value.items() if name in NESTED else [(None, value)]
            for sub, item in items:
                if item is None:
                    continue
                dotted = f"{name}.{sub}" if sub else name
                values[dotted] = item
                origins[dotted] = Origin(file=file, key=_key(prefix, dotted))
    return values, origins


def _key(prefix: str, dotted: str) -> str:
    kebab = dotted.replace("_", "-")
    if prefix == CLI:
        return "--" + kebab.split(".")[-1]
    return f"{prefix}.{kebab}" if prefix else kebab


def resolve(
    recipe: Recipe, target: str, zoo: Zoo, *, recipe_file: str, overrides: Settings | None = None,
    revision: str | None = None,
) -> BuildPlan:
    """Resolve one target of a recipe into a plan (may be over budget; see ``require_fits``).

    ``revision`` pins an upstream commit from the command line (``--revision``).
    """
    table = _target_table(recipe, target, recipe_file)
    values, origins = cascade(_levels(zoo, recipe, table, target, recipe_file, overrides))
    platform_id = table.platform or target
    platform = _platform(zoo, platform_id, recipe_file, target)
    _clamp_context(values, origins, platform, platform_id, recipe, recipe_file)
    _check_gate(values, origins)
    _platform_backend(values, origins, platform, platform_id)
    refs = _references(values, origins, zoo, recipe, platform_id, recipe_file)
    sizes, needs, gate_runtime = _predictions(recipe, refs["scheme"], refs["kernel"], values)
    source = _pinned_source(recipe, revision, origins)
    return BuildPlan(
        **_model_fields(recipe),
        target=target,
        platform_id=platform_id,
        platform=platform,
        backend=values["backend"],
        pipeline=values["pipeline"],
        scheme_id=values["quant"],
        scheme=refs["scheme"],
        kernel_id=values["kernel"],
        kernel=refs["kernel"],
        context_length=values["context_length"],
        gate_margin=values["gate.margin"],
        gate_max_introduced_flips=values["gate.max_introduced_flips"],
        gate_positions=values["gate.positions"],
        gate_runtime=gate_runtime,
        publish_repo=values.get("publish.repo"),
        publish_private=values.get("publish.private", False),
        source=source,
        license=refs["license"],
        estimate=sizes,
        budget=_budget(platform, sizes.model_bytes),
        resources=needs,
        overrides=_command_line(overrides, revision),
        origins=origins,
    )


def _model_fields(recipe: Recipe) -> dict[str, Any]:
    """What the plan carries of the recipe's model, whatever the target."""
    model = recipe.model
    return {"recipe_id": recipe.id, "model_name": model.name, "description": model.description, "tags": model.tags,
            "card_notes": model.card_notes, "license_id": model.license, "card": model.card,
            "architecture": recipe.architecture}


def _command_line(overrides: Settings | None, revision: str | None) -> dict[str, Any]:
    """The settings the command line gave, by dotted key (``--revision`` as ``source.revision``)."""
    given = cascade([(overrides, CLI, CLI)])[0] if overrides is not None else {}
    return given | ({"source.revision": revision} if revision is not None else {})


def _predictions(
    recipe: Recipe, scheme: Scheme, kernel: Kernel, values: dict[str, Any],
) -> tuple[SizeEstimate, ResourceEstimate, GateRuntime]:
    """The bundle's size, how the gate runs on Linux, each build stage's memory and disk."""
    tensors = recipe.architecture.tensors()
    backend_id = values["backend"]
    program = backend(backend_id).program_bytes(recipe.architecture.layout(), scheme)
    sizes = estimate(tensors, scheme, kernel, program)
    generated = isinstance(recipe.model.source, GeneratedSource)
    gate_runtime = gate_runtime_of(recipe.architecture, backend_id, values["gate.positions"])
    needs = resource_estimate(tensors, sizes, scheme, kernel, generated=generated, gate_runtime=gate_runtime,
                              backend=backend_id)
    return sizes, needs, gate_runtime


def _levels(zoo: Zoo, recipe: Recipe, table: Settings, target: str, recipe_file: str, overrides):
    """The cascade, lowest first: zoo defaults, recipe defaults, the target table, the command line."""
    levels = [
        (zoo.defaults, "zoo/zoo.toml", "defaults"),
        (recipe.defaults, recipe_file, "defaults"),
        (table, recipe_file, f"targets.{target}"),
    ]
    return levels + ([(overrides, CLI, CLI)] if overrides is not None else [])


def _pinned_source(recipe: Recipe, revision: str | None, origins: dict[str, Origin]) -> HubSource | GeneratedSource:
    source = recipe.model.source
    if revision is None:
        return source
    if not isinstance(source, HubSource):
        raise ConfigError("--revision: the recipe's source is generated, not a Hub repo", "drop --revision")
    if not COMMIT_SHA.match(revision):
        raise ConfigError(f"--revision: '{revision}' is not a full 40-character commit sha", "pin a commit")
    origins["source.revision"] = Origin(file=CLI, key="--revision")
    return source.model_copy(update={"revision": revision})


def _target_table(recipe: Recipe, target: str, recipe_file: str):
    if target not in recipe.targets:
        hint = did_you_mean(target, recipe.targets)
        raise UnknownTargetError(f"{recipe_file}: recipe '{recipe.id}' has no target '{target}'", hint)
    return recipe.targets[target]


def _platform(zoo: Zoo, platform_id: str, recipe_file: str, target: str) -> Platform:
    if platform_id not in zoo.platforms:
        raise RecipeError(recipe_file, f"targets.{target}.platform", f"unknown platform '{platform_id}'",
                          did_you_mean(platform_id, zoo.platforms))
    return zoo.platforms[platform_id]


def _clamp_context(values: dict, origins: dict, platform: Platform, platform_id: str, recipe: Recipe,
                   recipe_file: str) -> None:
    """The context a plan serves: the platform's max-context unless a recipe or the command line
    asks for one (the zoo-wide default is for a platform that states none), clamped to what the
    model takes; a length a recipe or the command line asked for is refused instead of clamped."""
    platform_origin = Origin(file="zoo/platforms.toml", key=f"platforms.{platform_id}.max-context")
    if platform.max_context is not None and origins["context_length"].file == "zoo/zoo.toml":
        values["context_length"], origins["context_length"] = platform.max_context, platform_origin
    limits = [
        (platform.max_context, f"platform '{platform_id}' max-context", platform_origin),
        (recipe.architecture.max_position_embeddings, "the model's max-position-embeddings",
         Origin(file=recipe_file, key="architecture.max-position-embeddings")),
    ]
    for limit, what, limit_origin in limits:
        if limit is None or values["context_length"] <= limit:
            continue
        origin = origins["context_length"]
        if origin.file not in ("zoo/zoo.toml", "zoo/platforms.toml"):
            raise ConfigError(
                f"{origin}: context length {values['context_length']} exceeds {what} {limit}",
                f"use at most {limit} for this target",
            )
        values["context_length"], origins["context_length"] = limit, limit_origin


def _check_gate(values: dict, origins: dict) -> None:
    """The gate must be able to fail, and its teacher-forced tokens must fit the context."""
    flips, positions, context = values["gate.max_introduced_flips"], values["gate.positions"], values["context_length"]
    if flips >= positions:
        raise ConfigError(
            f"{origins['gate.max_introduced_flips']}: max-introduced-flips {flips} is not below gate positions "
            f"{positions} ({origins['gate.positions']}): a gate that allows every position to flip cannot fail",
            f"use at most {positions - 1}",
        )
    if positions >= context:
        raise ConfigError(
            f"{origins['gate.positions']}: {positions} gate positions do not fit after the prompt in context "
            f"length {context} ({origins['context_length']})",
            f"use fewer than {context} positions, or a longer context-length",
        )


def _platform_backend(values: dict, origins: dict, platform: Platform, platform_id: str) -> None:
    """A backend left at the zoo default follows the platform (e.g. Core ML for OS 18 devices)."""
    if origins["backend"].file == "zoo/zoo.toml" and values["backend"] not in platform.backends:
        values["backend"] = platform.backends[0]
        origins["backend"] = Origin(file="zoo/platforms.toml", key=f"platforms.{platform_id}.backends")


def _references(values, origins, zoo: Zoo, recipe: Recipe, platform_id: str, recipe_file: str) -> dict:
    """Check every id the cascade produced; errors point at the level that set it."""
    platform = zoo.platforms[platform_id]
    _known(values["backend"], BACKENDS, origins["backend"], "backend")
    if values["backend"] not in platform.backends:
        raise ConfigError(
            f"{origins['backend']}: backend '{values['backend']}' does not serve platform '{platform_id}'",
            "platform backends: " + ", ".join(platform.backends),
        )
    _known(values["pipeline"], PIPELINES, origins["pipeline"], "pipeline")
    _known(values["quant"], zoo.schemes, origins["quant"], "quant scheme")
    if values["backend"] not in zoo.schemes[values["quant"]].backends:
        usable = usable_schemes(zoo, values["backend"], zoo.kernels.get(values["kernel"]))
        raise ConfigError(
            f"{origins['quant']}: scheme '{values['quant']}' has no mapping on backend '{values['backend']}'",
            f"schemes for backend {values['backend']} with kernel {values['kernel']}: {', '.join(usable)}",
        )
    refusal = scheme_refusal(values["backend"], zoo.schemes[values["quant"]])
    if refusal:
        raise ConfigError(f"{origins['quant']}: scheme '{values['quant']}': {refusal}",
                          "give the tensor group a format this backend stores, in zoo/schemes.toml")
    _known(values["kernel"], zoo.kernels, origins["kernel"], "kernel")
    kernel = zoo.kernels[values["kernel"]]
    _kernel_fits_model(kernel, values["kernel"], origins["kernel"], recipe.architecture, zoo)
    _kernel_applies(kernel, values, origins["kernel"], zoo)
    refusal = backend(values["backend"]).graph_refusal(recipe.architecture.layout())
    if refusal:
        raise ConfigError(f"{origins['backend']}: backend '{values['backend']}': {refusal}",
                          "build this model for a Core AI platform (mac, iphone, ipad)")
    licenses = zoo.licenses
    if recipe.model.license not in licenses:
        raise RecipeError(
            recipe_file, "model.license",
            f"unknown license '{recipe.model.license}'", unknown_license_hint(recipe.model.license, licenses),
        )
    return {"scheme": zoo.schemes[values["quant"]], "kernel": kernel, "license": licenses[recipe.model.license]}


def _known(value: str, known, origin: Origin, what: str) -> None:
    if value not in known:
        raise ConfigError(f"{origin}: unknown {what} '{value}'", did_you_mean(value, known))


def _kernel_fits_model(kernel: Kernel, kernel_id: str, origin: Origin, arch: Any, zoo: Zoo) -> None:
    kind = model_kind(arch)
    if kernel.needs != kind:
        fitting = [k for k, v in zoo.kernels.items() if v.needs == kind]
        raise ConfigError(
            f"{origin}: kernel '{kernel_id}' needs a model with {kernel.needs}; this {arch.family_tag} model has "
            f"{kind}", "kernels for this model: " + ", ".join(fitting),
        )


def _kernel_applies(kernel: Kernel, values: dict, origin: Origin, zoo: Zoo) -> None:
    problems = [
        (values["backend"], kernel.backends, "backend"),
        (values["quant"], usable_schemes(zoo, values["backend"], kernel), "quant scheme"),  # on this backend
    ]
    for value, allowed, what in problems:
        if value not in allowed:
            raise ConfigError(f"{origin}: kernel '{values['kernel']}' does not support {what} '{value}'",
                              f"it supports {what}s: {', '.join(allowed)}")


def _budget(platform: Platform, estimated: int) -> Budget:
    needs = platform.entitlement and estimated > platform.entitlement.above_bytes
    return Budget(
        budget_bytes=platform.budget_bytes,
        estimated_bytes=estimated,
        fits=estimated <= platform.budget_bytes,
        entitlement=platform.entitlement.name if needs else None,
    )


def model_kind(arch: Any) -> str:
    """What a kernel may need of this model: ``stacked-experts`` or ``no-experts`` (``zoo/kernels.toml``)."""
    return "stacked-experts" if arch.layout().routed_experts else "no-experts"
