"""``zoo build``: plan -> checkpoint -> one .aimodel -> gate -> card -> contract check -> manifest, atomically.

Stages run inside the build lock and a staging directory; the finished bundle is
renamed into place only after its manifest is written. A failed gate still leaves a
complete bundle (marked not publishable) so it can be inspected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..bundle.card import render_card
from ..bundle.contract import require_contract
from ..bundle.digests import hash_ahead
from ..bundle.layout import (
    PIPELINE_DIR, asset_name, build_lock, bundle_dir, checkpoint_record, remember_checkpoint, staging,
)
from ..bundle.manifest import (
    MANIFEST, BundleSizes, GateSummary, Manifest, ManifestSource, local_overrides, mismatches, read_manifest,
    program_facts, write_json_atomic, write_manifest,
)
from ..backends.registry import backend
from ..bundle.package import copy_license, dir_bytes, package_model_dir
from ..catalog.records import record_build
from ..config.recipe import HubSource
from ..config.zoo_data import Zoo
from ..errors import BudgetExceededError, GateFailedError
from ..fetch.hub import fetch_checkpoint, fetch_folder, is_fetched, pinned_revision
from ..fetch.provenance import ConvertedFrom, read_provenance
from ..fetch.license_text import card_license_source
from ..gate.progress import reporting_to
from ..phase_clock import PhaseTime
from ..plan.resolve import PLAN_FILE, BuildPlan
from ..units import gb
from .quiet import captured, pointing_at
from .resources import Preflight


@dataclass
class BuildOptions:
    weights: Path | None = None
    revision: str | None = None
    force: bool = False
    gate: bool = True
    record: bool = False  # write zoo/records/<id>/<target>.json for the catalog
    ignore_resources: bool = False  # skip the memory and disk pre-flight


@dataclass
class BuildResult:
    bundle: Path
    cached: bool
    manifest: Manifest
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    phases: dict[str, dict[str, PhaseTime]] = field(default_factory=dict)


class Stages:
    """Times each stage and tells an optional observer (the CLI's progress display)."""

    def __init__(self, observer: Callable[[str, str, float], None] | None = None) -> None:
        self.observer = observer or (lambda stage, event, seconds: None)
        self.timings: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self.phases: dict[str, dict[str, PhaseTime]] = {}  # the phases inside a stage, where it records them
        self.before: Callable[[str], None] = lambda stage: None  # the build's pre-flight check

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.before(name)
        self.observer(name, "start", 0.0)
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)
        # ru_maxrss is the peak so far (kB on Linux), of this process or of its largest finished
        # child (the export runs in one): a running maximum by stage.
        peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        self.peak_rss_mb[name] = round(peak / 1024, 1)
        self.observer(name, "done", self.timings[name])

    def note(self, name: str, text: str) -> None:
        """Progress inside a running stage."""
        self.observer(name, f"note:{text}", 0.0)


def build(plan: BuildPlan, zoo: Zoo, options: BuildOptions, stages: Stages | None = None) -> BuildResult:
    """Build (or reuse) the bundle of ``plan``; raises typed errors, never half a bundle."""
    stages = stages or Stages()
    final = bundle_dir(zoo.root, plan.recipe_id, plan.target)
    log = final.parent / f"{final.name}.log"
    preflight = _preflight(plan, zoo, final, options)
    if options.force or not (final / MANIFEST).is_file():
        preflight.up_front()  # the bundle will be built: refuse now, before anything is written
    stages.before = preflight.before
    with build_lock(final), pointing_at(log), captured(log):
        with stages("fetch"):
            checkpoint = fetch_checkpoint(
                plan, zoo.root / ".zoo-cache", zoo.data_dir / "licenses",
                weights=options.weights, revision=options.revision,
            )
        key = build_key(plan, checkpoint, options)
        if not options.force and is_cached(final, key):
            manifest = read_manifest(final)
            remember_checkpoint(checkpoint_record(zoo.root, plan.recipe_id, plan.target), checkpoint)
            if options.record:
                record_build(zoo, manifest)
            return BuildResult(final, True, manifest, stages.timings, stages.peak_rss_mb, stages.phases)
        with staging(final) as stage:
            manifest = _assemble(plan, zoo, checkpoint, stage, key, options, stages, log)
        remember_checkpoint(checkpoint_record(zoo.root, plan.recipe_id, plan.target), checkpoint)
        if options.record:
            record_build(zoo, manifest)
    result = BuildResult(final, False, manifest, stages.timings, stages.peak_rss_mb, stages.phases)
    if manifest.gate.verdict == "FAIL":
        raise GateFailedError(
            f"{plan.recipe_id} --target {plan.target}: {manifest.gate.line}; bundle kept at {final} "
            "(not publishable)",
            "inspect gate.json; choose a gentler scheme or raise gate.max-introduced-flips in the recipe",
        )
    return result


def _preflight(plan: BuildPlan, zoo: Zoo, final: Path, options: BuildOptions) -> Preflight:
    """The stages this build may run, and the folders each writes to, for the resource checks."""
    if isinstance(plan.source, HubSource) and options.weights is None:
        pinned_revision(plan.source, options.revision)  # an unpinned source is a recipe error, said first
    cache = zoo.root / ".zoo-cache"
    fetching = options.weights is None and not is_fetched(plan, cache, options.revision)
    stages = [name for name, runs in (("fetch", fetching), ("export", True), ("gate", options.gate)) if runs]
    places = {"cache": fetch_folder(plan, cache, options.revision) if fetching else cache,
              "build": final.parent, "temp": Path(tempfile.gettempdir())}
    command = f"zoo plan {plan.recipe_id} --target {plan.target}"
    return Preflight(plan.resources, places, command, [] if options.ignore_resources else stages)


def _assemble(plan, zoo, checkpoint, stage: Path, key: str, options, stages, log: Path) -> Manifest:
    stem = asset_name(plan.model_name, plan.scheme_id)
    model_dir = stage / PIPELINE_DIR / stem
    converted = read_provenance(checkpoint)  # a damaged record is refused before the export
    write_json_atomic(stage / PLAN_FILE, plan.to_json())
    with stages("export"):
        from .child import ExportRequest, run_export

        stages.note("export", f"{plan.backend} {plan.scheme_id}, kernel {plan.kernel_id}")
        request = ExportRequest(plan=plan, checkpoint=checkpoint, out_dir=model_dir, stem=stem)
        exported = run_export(request, log, scratch=stage)
        model, stages.phases["export"] = exported.model, exported.phases
    hash_ahead(p for p in sorted(model.rglob("*")) if p.is_file())  # for the manifest, beside the next stages
    with stages("package"):
        package_model_dir(plan, checkpoint, model_dir, model)
        program = program_facts(backend(plan.backend).program_ops(model))
        license = copy_license(plan, checkpoint, stage, zoo.data_dir / "licenses")
    gate = _gate(plan, zoo, checkpoint, stage, model_dir, options, stages)
    with stages("card"):
        sizes = _sizes(plan, stage, dir_bytes(model))
        source = card_license_source(plan, license, converted.license_from if converted else None)
        _write_card(plan, zoo, stage, stem, model.name, gate, converted, source)
        sizes["bundle_bytes"] = dir_bytes(stage)
        _check_budget(plan, sizes["bundle_bytes"])
        require_contract(stage / PIPELINE_DIR / stem)
    with stages("manifest"):
        fields = _manifest_fields(plan, key, sizes, gate, stem, converted)
        return write_manifest(stage, fields.model_copy(update={"license_text": license.origin, "program": program}))


def ceiling_cache(zoo: Zoo) -> Path:
    return zoo.root / ".zoo-cache" / "fp16-ceiling"


def _gate(plan, zoo: Zoo, checkpoint, stage: Path, model_dir: Path, options, stages) -> dict[str, Any]:
    if not options.gate:
        return {"verdict": "NOT GATED", "line": "not gated (built with --no-gate)", "passed": False}
    with stages("gate"), reporting_to(lambda text: stages.note("gate", text)):
        from ..gate.run import run_gate

        report = run_gate(plan, checkpoint, model_dir, stage / "gate.json", ceiling_cache=ceiling_cache(zoo))
    return report.summary()


def _sizes(plan: BuildPlan, stage: Path, model_bytes: int) -> dict[str, int]:
    return {
        "estimated_bytes": plan.budget.estimated_bytes,
        "model_bytes": model_bytes,
        "budget_bytes": plan.budget.budget_bytes,
    }


def _check_budget(plan: BuildPlan, actual: int) -> None:
    if actual > plan.budget.budget_bytes:
        raise BudgetExceededError(
            f"{plan.recipe_id} --target {plan.target}: the built bundle is {gb(actual)}, over the "
            f"{plan.platform_id} budget of {gb(plan.budget.budget_bytes)}; nothing was kept",
            "choose a smaller scheme (zoo plan shows the alternatives)",
        )


def _write_card(plan, zoo: Zoo, stage: Path, stem: str, model_file: str, gate, converted: ConvertedFrom | None,
                license_source: str) -> None:
    facts = {
        "converted_from": converted.sentence() if converted else None,
        "license_source": license_source,
        "description": plan.description or plan.model_name,
        "bundle_dir": f"{PIPELINE_DIR}/{stem}",
        "main_asset": model_file,
        "actual_size": gb(sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())),
        "gate_line": gate["line"],
        "gate_detail": gate.get("detail", gate["line"]),
        "zootool_version": __version__,
    }
    (stage / "README.md").write_text(render_card(plan, zoo.cards_dir, facts))


def _manifest_fields(plan: BuildPlan, key: str, sizes, gate, stem: str, converted: ConvertedFrom | None) -> Manifest:
    summary = GateSummary.model_validate({k: v for k, v in gate.items() if k != "detail"})
    return Manifest(
        recipe=plan.recipe_id,
        target=plan.target,
        platform=plan.platform_id,
        plan_hash=plan.plan_hash,
        build_key=key,
        bundle_version=f"{plan.recipe_id}-{plan.target}-{plan.plan_hash}",
        scheme=plan.scheme_id,
        kernel=plan.kernel_id,
        model_dir=f"{PIPELINE_DIR}/{stem}",
        source=ManifestSource.model_validate(plan.source_fields() | {"converted_from": converted}),
        size=BundleSizes.model_validate(sizes),
        gate=summary,
        publishable=summary.passed and not local_overrides(plan.overrides),
        overrides=plan.overrides,
    )


def build_key(plan: BuildPlan, checkpoint: Path, options: BuildOptions) -> str:
    """Plan + input identity + tool version + gate choice: equal keys mean an equal build."""
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in checkpoint.glob("*.safetensors"))
    config = (checkpoint / "config.json").read_bytes()
    identity = {
        "plan": plan.plan_hash, "zootool": __version__, "gate": options.gate,
        "revision": options.revision, "config": hashlib.sha256(config).hexdigest(), "weights": files,
    }
    from ..backends.coreai.composites import composites_enabled

    if composites_enabled():  # another program for the same plan: not the default build's bundle
        identity["composites"] = True
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def is_cached(final: Path, key: str) -> bool:
    """A previous complete bundle with the same build key whose files still match its manifest."""
    try:
        manifest = read_manifest(final)
    except (OSError, ValueError):
        return False
    return manifest.build_key == key and not mismatches(final, manifest)
