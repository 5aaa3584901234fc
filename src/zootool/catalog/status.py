"""``zoo status``: every model x target, its plan against its last build and publish, and what it needs.

The last build of a row is its bundle's ``manifest.json`` in ``build/`` when there is one (this
machine built it), else its catalog record in ``zoo/records/`` (committed with the zoo); a
publish counts when the record's ``publish.plan_hash`` is the current plan's. States, first
match wins:

* ``over budget``: the plan's size estimate is over the platform's budget (``zoo plan`` refuses it);
* ``unpinned``: a Hub source without a commit (``zoo build`` refuses it);
* ``never built``: no bundle and no record;
* ``outdated``: the last build is of another plan (the recipe, zoo data or a scheme changed);
* ``offline``: never built or outdated, but HF_HUB_OFFLINE is set and the Hub weights are not in
  the Hugging Face cache, so a build could not fetch them;
* ``published``, ``gated``, ``gate failed``, ``built`` (built with ``--no-gate``): current.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .. import __version__
from ..build.jobs import needs_of
from ..bundle.layout import bundle_dir
from ..bundle.manifest import Manifest, mismatches, read_manifest
from ..config.recipe import HubSource
from ..config.zoo_data import Zoo
from ..errors import ConfigError, ZooError
from ..plan.duration import estimated_seconds
from ..plan.resolve import BuildPlan

State = Literal["over budget", "unpinned", "never built", "outdated", "offline", "published", "gated", "gate failed",
                "built"]
BLOCKED = ("over budget", "unpinned", "offline")  # a build would be refused: --changed leaves these out
TO_BUILD = ("never built", "outdated")


class RowStatus(BaseModel):
    """One row of ``zoo status`` (and its ``--json``)."""

    model: str
    target: str
    platform: str
    backend: str
    scheme: str
    kernel: str
    plan_hash: str
    built_plan_hash: str | None  # the plan of the last build
    built_from: Literal["bundle", "record"] | None
    published_plan_hash: str | None
    state: State
    built: bool
    gated: bool
    published: bool
    outdated: bool
    over_budget: bool
    gate: str | None  # the last build's gate line
    bundle: str | None  # build/<model>/<target>, when built on this machine
    estimated_bytes: int
    budget_bytes: int
    memory_bytes: int  # the largest stage's predicted peak
    disk_bytes: int
    cpus: int
    seconds: float  # predicted wall time from nothing

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.target


class Row(BaseModel):
    """A plan with its status: what selection hands to the executors."""

    plan: BuildPlan
    status: RowStatus


class RowError(BaseModel):
    """A recipe (``target`` None) or one of its targets that does not resolve."""

    model: str
    target: str | None
    message: str
    hint: str
    exit_code: int


def zoo_rows(zoo: Zoo, display: Callable[[Path], str]) -> tuple[list[Row], list[RowError]]:
    """Every recipe x target of the zoo, resolved, with its status; broken ones as errors, in order."""
    from ..plan.resolve import resolve
    from ..config.recipe import load_recipe
    from ..config.registry import recipe_paths

    rows, errors = [], []
    for model, path in recipe_paths(zoo).items():
        try:
            recipe = load_recipe(path)
        except ZooError as exc:
            errors.append(_error(model, None, exc))
            continue
        for target in recipe.targets:
            try:
                plan = resolve(recipe, target, zoo, recipe_file=display(path))
            except ConfigError as exc:
                errors.append(_error(model, target, exc))
                continue
            rows.append(Row(plan=plan, status=row_status(zoo, plan)))
    return rows, errors


def _error(model: str, target: str | None, exc: ZooError) -> RowError:
    return RowError(model=model, target=target, message=exc.message, hint=exc.hint or "", exit_code=exc.exit_code)


def row_status(zoo: Zoo, plan: BuildPlan) -> RowStatus:
    """The state of one plan against its bundle and its catalog record (no hashing of bundle files)."""
    from .records import read_record

    final = bundle_dir(zoo.root, plan.recipe_id, plan.target)
    manifest = _manifest(final)
    record = read_record(zoo, plan.recipe_id, plan.target)
    last = manifest or record
    built_hash, gate = _last_build(manifest, record)
    published_hash = ((record or {}).get("publish") or {}).get("plan_hash")
    current = built_hash == plan.plan_hash
    state = _state(plan, built_hash, gate.get("verdict"), published_hash == plan.plan_hash)
    if state in TO_BUILD and _weights_out_of_reach(zoo, plan):
        state = "offline"
    needs = needs_of(plan)
    return RowStatus(
        model=plan.recipe_id, target=plan.target, platform=plan.platform_id, backend=plan.backend,
        scheme=plan.scheme_id, kernel=plan.kernel_id, plan_hash=plan.plan_hash, built_plan_hash=built_hash,
        built_from=("bundle" if manifest else "record") if last else None, published_plan_hash=published_hash,
        state=state, built=current, gated=current and bool(gate.get("passed")),
        published=published_hash == plan.plan_hash, outdated=state == "outdated", over_budget=not plan.budget.fits,
        gate=gate.get("line"), bundle=f"build/{plan.recipe_id}/{plan.target}" if manifest else None,
        estimated_bytes=plan.budget.estimated_bytes, budget_bytes=plan.budget.budget_bytes,
        memory_bytes=needs.memory_bytes, disk_bytes=needs.disk_bytes, cpus=needs.cpus,
        seconds=estimated_seconds(plan),
    )


def _state(plan: BuildPlan, built_hash: str | None, verdict: str | None, published: bool) -> State:
    if not plan.budget.fits:
        return "over budget"
    if isinstance(plan.source, HubSource) and not plan.source.revision:
        return "unpinned"
    if built_hash is None:
        return "never built"
    if built_hash != plan.plan_hash:
        return "outdated"
    if published:
        return "published"
    return {"PASS": "gated", "CLEAN": "gated", "FAIL": "gate failed"}.get(verdict or "", "built")


def _last_build(manifest: Manifest | None, record: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """(plan hash, gate summary) of the bundle in build/, else of the committed record."""
    if manifest is not None:
        return manifest.plan_hash, manifest.gate.model_dump() if manifest.gate else {}
    if record is not None:
        return record.get("plan_hash"), record.get("gate") or {}
    return None, {}


def _weights_out_of_reach(zoo: Zoo, plan: BuildPlan) -> bool:
    """HF_HUB_OFFLINE is set and the plan's Hub weights are not in the cache (huggingface_hub only read then)."""
    if not isinstance(plan.source, HubSource) or not (os.environ.get("HF_HUB_OFFLINE")
                                                      or os.environ.get("TRANSFORMERS_OFFLINE")):
        return False
    from huggingface_hub import constants

    from ..fetch.hub import is_fetched

    return constants.HF_HUB_OFFLINE and not is_fetched(plan, zoo.root / ".zoo-cache")


def _manifest(final: Path) -> Manifest | None:
    try:
        return read_manifest(final)
    except (OSError, ValueError):
        return None


def finished(zoo: Zoo, plan: BuildPlan, gate: bool) -> Manifest | None:
    """The manifest of a bundle this zootool built from ``plan`` whose files are intact, else None.

    Zoo-wide runs skip such rows before handing them to an executor, so a bundle that came
    back from a Ray worker is reused here as one built on this machine is.
    """
    final = bundle_dir(zoo.root, plan.recipe_id, plan.target)
    manifest = _manifest(final)
    if manifest is None or manifest.plan_hash != plan.plan_hash:
        return None
    if manifest.tool_versions.get("zootool") != __version__ or manifest.overrides:
        return None
    verdict = manifest.gate.verdict if manifest.gate else None
    if (verdict != "NOT GATED") != gate or mismatches(final, manifest):
        return None
    return manifest
