"""``zoo verify``: re-check a bundle without running it (hashes, contents, engine contract, license, card, budget, gate).

A folder without ``manifest.json`` that engines can load (a model folder in Apple's form, or a
Hub layout of them) is checked against the engine contract alone: it is no zootool bundle, so
nothing says what it was built from, and it is never publishable.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VerifyError
from .contract import Findings, contract_findings
from .layout import model_folders
from .manifest import MANIFEST, Manifest, bundle_files, mismatches, publish_refusals, read_manifest

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
    warnings: list[str] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)  # set for model folders without a manifest

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def publishable(self) -> bool:
        return self.ok and not self.publish_refusals

    @property
    def publish_refusals(self) -> list[str]:
        """Why ``zoo publish`` refuses this bundle although it verifies (empty: it publishes it)."""
        if self.models:
            return ["no manifest.json: not a bundle zootool built"]
        return publish_refusals(self.manifest)


def verify_bundle(bundle: Path, budget_bytes: int | None = None) -> VerifyReport:
    """Every check that needs no model execution; problems are collected, not raised."""
    if not (bundle / MANIFEST).exists() and model_folders(bundle):
        return _verify_model_folders(bundle)
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
    _engine_contract(report)
    report.problems += _budget(report.manifest, budget_bytes)
    report.problems += _gate(bundle, report.manifest)
    report.problems += _plan(bundle, report.manifest)
    return report


def _verify_model_folders(path: Path) -> VerifyReport:
    """Model folders without a manifest (Apple's exporter writes them so): the engine contract alone."""
    report = VerifyReport(path, models=model_folders(path))
    for folder in report.models:
        where = "" if folder == path else f"{folder.relative_to(path).as_posix()}: "
        findings = contract_findings(folder)
        _add(report, Findings([where + p for p in findings.problems], [where + w for w in findings.warnings]))
    return report


def _add(report: VerifyReport, findings: Findings) -> None:
    report.problems += [f"engine contract: {problem}" for problem in findings.problems]
    report.warnings += findings.warnings


def require(report: VerifyReport, *, publishable: bool = False) -> None:
    """Raise ``VerifyError`` naming every problem (and, when publishing, why it is not publishable)."""
    problems = list(report.problems)
    if publishable and report.ok:
        problems += report.publish_refusals
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


def _engine_contract(report: VerifyReport) -> None:
    model_dir = report.bundle / (report.manifest.model_dir or "")
    if not model_dir.is_dir():
        report.problems.append(f"manifest: model_dir '{report.manifest.model_dir}' is not in the bundle")
        return
    _add(report, contract_findings(model_dir))


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
