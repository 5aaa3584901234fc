"""Model cards rendered from ``cards/<name>.md.j2`` with huggingface_hub's ModelCard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.registry import backend
from ..errors import ConfigError
from ..plan.resolve import BuildPlan
from ..units import gb

COMMON_TAGS = ("apple-silicon", "on-device")


def card_data(plan: BuildPlan) -> Any:
    """Front matter as the Hub expects it for a quantized Core AI derivative."""
    from huggingface_hub import ModelCardData

    hub = getattr(plan.source, "hub", None)
    custom = plan.license.hub_license == "other"
    facts = backend(plan.backend).card
    return ModelCardData(
        license=plan.license.hub_license,
        license_name=plan.license_id if custom else None,
        license_link=plan.license.link if custom else None,
        base_model=hub,
        base_model_relation="quantized" if hub else None,
        library_name=facts.library_name,
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys((*facts.tags, *COMMON_TAGS, plan.scheme_id, plan.platform.os, *plan.tags))),
    )


def render_card(plan: BuildPlan, template_dir: Path, facts: dict[str, Any]) -> str:
    """The card text: front matter + body filled from the plan and build ``facts``."""
    from huggingface_hub import ModelCard

    template = template_dir / f"{plan.card}.md.j2"
    if not template.is_file():
        raise ConfigError(f"card template {template} not found", "add it under cards/ or fix model.card")
    values = {**plan_facts(plan), **facts}
    card = ModelCard.from_template(card_data(plan), template_path=str(template), **values)
    return str(card)


def plan_facts(plan: BuildPlan) -> dict[str, Any]:
    arch = plan.architecture
    chosen = backend(plan.backend)
    return {
        "runtime_name": chosen.card.runtime_name,
        "asset_format": chosen.card.asset_format,
        "is_coreai": chosen.language_bundle,
        "model_name": plan.model_name,
        "recipe_id": plan.recipe_id,
        "plan_hash": plan.plan_hash,
        "target": plan.target,
        "device": plan.platform.device,
        "platform_name": plan.platform.display_name,
        "os_name": plan.platform.os_name,
        "min_os": plan.platform.min_os,
        "base_model": getattr(plan.source, "hub", None),
        "revision": getattr(plan.source, "revision", None),
        "architecture": f"{arch.family}, {len(arch.tensors())} tensors",
        "params": f"{plan.estimate.params:,}",
        "scheme_id": plan.scheme_id,
        "scheme_summary": plan.scheme.summary,
        "kernel_id": plan.kernel_id,
        "runs_on_linux": plan.kernel.runs_on_linux,
        "kernel_summary": plan.kernel.summary,
        "query_len": plan.kernel.query_len if chosen.language_bundle else None,
        "context_length": plan.context_length,
        "estimated_size": gb(plan.budget.estimated_bytes),
        "budget_size": gb(plan.budget.budget_bytes),
        "entitlement": plan.budget.entitlement,
        "entitlement_why": plan.platform.entitlement.why if plan.platform.entitlement else "",
        "license_name": plan.license.name,
        "license_source": plan.license.text_source,
        "card_notes": list(plan.card_notes),
    }
