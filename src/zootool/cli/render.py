"""Human-readable views of plans and recipes (rich tables); JSON views live beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..plan.resolve import BuildPlan
from ..units import gb
from .list_rows import ListRow

if TYPE_CHECKING:
    from rich.table import Table


def verdict(plan: BuildPlan) -> str:
    return "fits" if plan.budget.fits else "OVER BUDGET"


def list_table(plans: list[BuildPlan]) -> Any:
    """Every plan, one per target, laid out to fit the terminal (see ``list_view``)."""
    from .list_view import ListView

    return ListView([ListRow.from_plan(plan) for plan in plans])


def plan_table(plan: BuildPlan) -> "Table":
    from rich.table import Table  # here, not at the top: `--json` views need no Rich

    table = Table(title=f"{plan.recipe_id} --target {plan.target}  (plan {plan.plan_hash})", show_header=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from", style="dim")
    origin = plan.origins.get
    rows = [
        ("platform", f"{plan.platform_id}: {plan.platform.device}", None),
        ("backend", plan.backend, origin("backend")),
        ("pipeline", plan.pipeline, origin("pipeline")),
        ("scheme", f"{plan.scheme_id}: {plan.scheme.summary}", origin("quant")),
        ("kernel", f"{plan.kernel_id}: {plan.kernel.summary}", origin("kernel")),
        ("context length", str(plan.context_length), origin("context_length")),
        ("gate", _gate(plan), origin("gate.max_introduced_flips")),
        ("source", _source(plan), None),
        ("license", f"{plan.license_id} ({plan.license.name})", None),
        ("publish to", plan.publish_repo or "(not set)", origin("publish.repo")),
        ("parameters", f"{plan.estimate.params:,}", None),
        ("estimated size", gb(plan.budget.estimated_bytes), None),
        ("budget", f"{gb(plan.budget.budget_bytes)} -> {verdict(plan)}", None),
    ]
    if plan.budget.entitlement:
        rows.append(("entitlement", plan.budget.entitlement, None))
    rows += [(f"{name} needs", f"{gb(need.memory_bytes)} memory, {gb(need.disk_bytes)} disk ({need.disk_location})",
              None) for name, need in plan.resources.stages.items()]
    for name, value, where in rows:
        table.add_row(name, value, str(where) if where else "")
    return table


def groups_table(plan: BuildPlan) -> "Table":
    from rich.table import Table

    table = Table(title="size estimate by tensor group")
    for column in ("group", "tensors", "params", "storage", "bytes"):
        table.add_column(column)
    for name, group in plan.estimate.groups.items():
        table.add_row(name, str(group.tensors), f"{group.params:,}", group.storage, gb(group.bytes))
    return table


def _gate(plan: BuildPlan) -> str:
    return (
        f"margin {plan.gate_margin}, <= {plan.gate_max_introduced_flips} introduced flips "
        f"over {plan.gate_positions} positions; on Linux {_gate_runtime_words(plan)}"
    )


def _gate_runtime_words(plan: BuildPlan) -> str:
    from ..plan.gate_runtime import conversion_check_tokens, engine_side_seconds_of

    side = _duration(engine_side_seconds_of(plan.architecture, plan.gate_positions))
    if plan.gate_runtime == "engine":
        return f"through the Core AI runtime (about {side} a side)"
    tokens = conversion_check_tokens(plan.architecture)
    return (f"streamed in torch, one layer at a time (the Core AI runtime would take about {side} a side), "
            f"with the converted program checked on the first {tokens} token{'s' if tokens > 1 else ''}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _source(plan: BuildPlan) -> str:
    source = plan.source
    if hasattr(source, "hub"):
        return f"{source.hub} @ {source.revision or 'UNPINNED'}"
    return f"generated ({source.generate}, seed {source.seed})"


def build_summary(result: Any) -> dict[str, Any]:
    """What ``zoo build`` reports (also its ``--json``)."""
    from ..bundle.manifest import publish_refusals

    manifest = result.manifest
    size = manifest.sizes
    refusals = publish_refusals(manifest)
    return {
        "bundle": str(result.bundle),
        "cached": result.cached,
        "plan_hash": manifest.plan_hash,
        "bundle_bytes": manifest.total_bytes,
        "bundle_size": gb(manifest.total_bytes),
        "model_size": gb(size.model_bytes or 0),
        "estimated_size": gb(size.estimated_bytes or 0),
        "budget_size": gb(size.budget_bytes or 0),
        "size": size.model_dump(),
        # The converted program's op count (constants included): what issue 25 compares with Apple's exporter.
        "program_ops": manifest.program.ops if manifest.program else None,
        "program": manifest.program.model_dump() if manifest.program else None,
        "gate": manifest.gate_line,
        "publishable": not refusals,
        "publish_refusals": refusals,
        "timings": result.timings,
        "peak_rss_mb": result.peak_rss_mb,
        "phases": {stage: {name: _phase_figures(time) for name, time in phases.items()}
                   for stage, phases in result.phases.items()},
    }


def _phase_figures(time: Any) -> dict[str, float | int | None]:
    return {"seconds": round(time.seconds, 2), "cpu_seconds": round(time.cpu_seconds, 2),
            "cores": round(time.cores, 2), "peak_rss_bytes": time.peak_rss_bytes}


def verify_summary(report: Any) -> str:
    """What ``zoo verify`` says of a bundle that verifies: one line, and the same word ``zoo publish`` would."""
    if report.models:
        return (f"verified {report.bundle}: {len(report.models)} model folder(s) meet the engine contract; "
                "publishable: no (no manifest.json: not a bundle zootool built)")
    return (f"verified {report.bundle}: {len(report.manifest.files)} files match the manifest; "
            f"publishable: {publishable_text(report.publish_refusals)}")


def publishable_text(refusals: list[str]) -> str:
    return f"no ({'; '.join(refusals)})" if refusals else "yes"
