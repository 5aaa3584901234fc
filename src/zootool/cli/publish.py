"""``zoo publish``: verify a built bundle, then put it on the Hub in one commit (or show what would go)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..build.quiet import quiet_command
from ..bundle.layout import bundle_dir
from ..bundle.manifest import Manifest
from ..bundle.verify import front_matter, require, verify_bundle
from ..config.recipe import PUBLIC_HUB
from ..config.registry import get
from ..config.zoo_data import Zoo
from ..errors import ConfigError, VerifyError
from ..plan.recorded import plan_of



def publish_command(
    zoo: Zoo, model: str, target: str, *, repo: str | None, private: bool, revision: str | None,
    endpoint: str | None, dry_run: bool, record: bool | None = None, token: str | None = None,
) -> dict[str, Any]:
    """Refuse anything that fails ``zoo verify`` or its gate; otherwise publish (or plan to).

    ``token`` None: ``HF_TOKEN``, else the huggingface_hub login of this machine.
    """
    recipe, path = get(zoo, model)
    bundle = bundle_dir(zoo.root, recipe.id, target)
    if not bundle.is_dir():
        raise VerifyError(f"{bundle}: not built", f"run `zoo build {model} --target {target}` first")
    with quiet_command("publish", zoo.root):  # verify loads the asset: the stack talks
        report = verify_bundle(bundle)
    _published_as_the_recipe_says(report.manifest, bundle, model, target)
    require(report, publishable=True)
    manifest = report.manifest
    plan = plan_of(zoo, manifest, bundle)
    if manifest.total_bytes > plan.budget.budget_bytes:
        raise VerifyError(f"{bundle}: {manifest.total_bytes} bytes exceed the {plan.platform_id} budget "
                          f"of {plan.budget.budget_bytes}", "rebuild with a smaller scheme")
    repo_id = repo or plan.publish_repo
    if not repo_id:
        raise ConfigError(
            f"{path}: targets.{target}.publish.repo is not set", "set it in the recipe or pass --repo namespace/name"
        )
    if dry_run:
        return _dry_run(bundle, repo_id, private or plan.publish_private)
    result = _publish(bundle, manifest, repo_id, private or plan.publish_private, revision, endpoint, token)
    # A catalog entry claims a Hub repo: only the public Hub counts, unless asked for.
    if record if record is not None else (endpoint or os.environ.get("HF_ENDPOINT")) in (None, PUBLIC_HUB):
        from ..catalog.records import record_publish

        record_publish(zoo, manifest.recipe, manifest.target, repo_id, result["commit_sha"], result["tag"],
                       manifest=manifest)
    return result


def _published_as_the_recipe_says(manifest: Manifest, bundle: Path, model: str, target: str) -> None:
    """Only a pinned revision may come from the command line; other overrides stay local experiments."""
    extra = manifest.local_overrides
    if extra:
        raise VerifyError(
            f"{bundle}: built with command-line overrides ({', '.join(extra)}); the zoo publishes what the recipe says",
            f"put them in [targets.{target}] of the recipe, then zoo build {model} --target {target}",
        )


def _dry_run(bundle: Path, repo_id: str, private: bool) -> dict[str, Any]:
    from ..publish.selection import plan_publish

    planned = plan_publish(bundle)
    return {
        "dry_run": True, "repo": repo_id, "private": private,
        "files": [{"path": f.path, "size": f.size} for f in planned.files],
        "total_bytes": planned.total_bytes,
        "card_front_matter": front_matter((bundle / "README.md").read_text()),
    }


def _publish(bundle: Path, manifest: Manifest, repo_id: str, private: bool, revision, endpoint, token) -> dict[str, Any]:
    from ..publish.hub import publish_bundle

    message = (
        f"Publish {manifest.recipe} ({manifest.target}), plan {manifest.plan_hash}, zootool {__version__}"
    )
    result = publish_bundle(
        bundle, repo_id, token=token, endpoint=endpoint, private=private, revision=revision,
        commit_message=message, tag=manifest.bundle_version,
    )
    return {"dry_run": False, "repo": repo_id, **result.model_dump(mode="json")}
