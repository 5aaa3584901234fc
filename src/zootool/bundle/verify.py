"""``zoo verify``: re-check a bundle without running it (hashes, contents, engine contract, license, card, budget, gate)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VerifyError
from .contract import contract_problems
from .manifest import MANIFEST, Manifest, bundle_files, mismatches, read_manifest

# fnmatch's "*" also crosses "/", so "*.aimodel/*" covers the asset's whole tree (same for .mlpackage).
ALLOWED = (
    "README.md", "LICENSE", "gate.json", "plan.json",
    "gpu-pipelined/*/metadata.json",
    "gpu-pipelined/*/tokenizer/*",
    "gpu-pipelined/*/*.aimodel/*",
    "gpu-pipelined/*/*.mlpackage/*",
)
CARD_KEYS = ("license", "library_name", "pipeline_tag", "tags")


@dataclass
class VerifyReport:
    bundle: Path
    problems: list[str] = field(default_factory=list)
    manifest: Manifest = field(default_factory=Manifest)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def publishable(self) -> bool:
        return self.ok and self.manifest.publishable


def verify_bundle(bundle: Path, budget_bytes: int | None = None) -> VerifyReport:
    """Every check that needs no model execution; problems are collected, not raised."""
    report = VerifyReport(bundle)
    try:
        report.manifest = read_manifest(bundle)
    except (OSError, ValueError) as exc:
        report.problems.append(f"{MANIFEST}: unreadable ({type(exc).__name__}); rebuild the bundle")
        return report
    report.problems += mismatches(bundle, report.manifest)
    report.problems += _stray_files(bundle)
    if report.problems:
        return report  # a file that is not what was built is not parsed: its hash says all there is
    report.problems += _license(bundle)
    report.problems += _card(bundle)
    report.problems += _engine_contract(bundle, report.manifest)
    report.problems += _budget(report.manifest, budget_bytes)
    report.problems += _gate(bundle, report.manifest)
    report.problems += _plan(bundle, report.manifest)
    return report


def require(report: VerifyReport, *, publishable: bool = False) -> None:
    """Raise ``VerifyError`` naming every problem (and an unpassed gate when publishing)."""
    problems = list(report.problems)
    if publishable and report.ok and not report.publishable:
        problems.append(f"gate: {report.manifest.gate_line or 'missing'}: only a bundle that passed its gate is published")
    if problems:
        raise VerifyError(
            f"{report.bundle}: " + "; ".join(problems),
            "rebuild with `zoo build MODEL --target T --force` (and fix the cause first)",
        )


def _stray_files(bundle: Path) -> list[str]:
    return [
        f"{rel}: not an allowed bundle file"
        for rel in map(Path.as_posix, bundle_files(bundle))
        if not any(fnmatch.fnmatch(rel, pattern) for pattern in ALLOWED)
    ]


def _license(bundle: Path) -> list[str]:
    path = bundle / "LICENSE"
    if not path.is_file() or not path.read_text(errors="replace").strip():
        return ["LICENSE: missing or empty; the bundle must ship the upstream license text"]
    return []


def _card(bundle: Path) -> list[str]:
    path = bundle / "README.md"
    if not path.is_file():
        return ["README.md: the model card is missing"]
    front = front_matter(path.read_text())
    if front is None:
        return ["README.md: no YAML front matter"]
    return [f"README.md: front matter lacks '{key}'" for key in CARD_KEYS if key not in front]


def front_matter(text: str) -> dict[str, Any] | None:
    import yaml

    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    if end < 0:
        return None
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _engine_contract(bundle: Path, manifest: Manifest) -> list[str]:
    model_dir = bundle / (manifest.model_dir or "")
    if not model_dir.is_dir():
        return [f"manifest: model_dir '{manifest.model_dir}' is not in the bundle"]
    return [f"engine contract: {problem}" for problem in contract_problems(model_dir)]


def _budget(manifest: Manifest, budget_bytes: int | None) -> list[str]:
    budget = budget_bytes if budget_bytes is not None else manifest.sizes.budget_bytes
    total = manifest.total_bytes
    if budget is not None and total > budget:
        return [f"size: {total} bytes exceeds the platform budget of {budget} bytes"]
    return []


def _plan(bundle: Path, manifest: Manifest) -> list[str]:
    """``plan.json`` is the plan the manifest names (bundles built before it existed have none)."""
    from ..plan.resolve import PLAN_FILE, BuildPlan

    path = bundle / PLAN_FILE
    if not path.is_file():
        return []
    try:
        plan_hash = BuildPlan.model_validate_json(path.read_bytes()).plan_hash
    except ValueError:
        return [f"{PLAN_FILE}: not a build plan"]
    if plan_hash != manifest.plan_hash:
        return [f"{PLAN_FILE}: plan {plan_hash} is not the manifest's {manifest.plan_hash}"]
    return []


def _gate(bundle: Path, manifest: Manifest) -> list[str]:
    gate = manifest.gate
    if gate is None or gate.verdict in (None, "NOT GATED"):
        return []
    if not (bundle / "gate.json").is_file():
        return ["gate.json: the manifest records a gate but the transcript is missing"]
    if manifest.publishable and not gate.passed:
        return ["manifest: marked publishable although its gate did not pass"]
    return []
