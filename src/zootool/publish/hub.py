"""Publish a built bundle to the Hugging Face Hub: one atomic commit, then an optional tag.

This is the only zootool module that talks to the Hub for publishing. huggingface_hub is
imported inside functions so commands that never publish do not pay for it.

Flow: read ``manifest.json`` (no network) -> create the repo if needed -> list the remote
tree -> compare sizes and hashes -> upload only what changed -> one ``create_commit``
guarded by ``parent_commit`` -> tag. An unchanged bundle makes no commit and sends no bytes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..bundle.manifest import Manifest
from ..errors import PublishError
from .errors import HubContext, translated
from .selection import (
    MANIFEST_NAME, PlannedFile, PublishPlan, git_blob_oid, plan_publish, selected, sha256_file,
)

__all__ = ["PlannedFile", "PublishPlan", "PublishResult", "plan_publish", "publish_bundle", "validate_card"]
KEEP_REMOTE = frozenset({".gitattributes"})  # created by the Hub with the repo; never ours to delete
COMMIT_RETRY_WAITS: tuple[float, ...] = (2.0, 5.0)  # pauses between commit attempts on 429/5xx
DEFAULT_COMMIT_MESSAGE = "Publish bundle with zootool"


class PublishResult(BaseModel):
    """Outcome of :func:`publish_bundle`; ``commit_sha`` is None when nothing changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    repo_url: str
    commit_sha: str | None
    tag: str | None
    files_uploaded: tuple[str, ...]
    files_deleted: tuple[str, ...]
    bytes_uploaded: int  # size of the added or changed files (LFS objects the Hub already holds are not re-sent)


# -- publish ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    head: str
    private: bool
    files: dict[str, Any]  # path -> huggingface_hub RepoFile


@dataclass(frozen=True)
class _Changes:
    additions: tuple[PlannedFile, ...]
    deletions: tuple[str, ...]


def publish_bundle(
    bundle_dir: Path,
    repo_id: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    tag: str | None = None,
    allow_patterns: list[str] | None = None,
) -> PublishResult:
    """Publish ``bundle_dir`` to ``repo_id`` as one atomic commit, then tag it.

    The token comes from ``token``, else ``HF_TOKEN``, else the huggingface_hub login; it
    never appears in errors or results. Hub failures raise :class:`PublishError` with a hint.
    """
    from huggingface_hub import HfApi

    bundle_dir = Path(bundle_dir)
    plan = plan_publish(bundle_dir, allow_patterns=allow_patterns)
    secret = _resolve_token(token)
    ctx = HubContext(repo_id, endpoint or "the Hugging Face Hub", revision or "main", secret)
    api = HfApi(endpoint=endpoint, token=secret)
    with translated("creating the repository", ctx):
        repo_url = str(api.create_repo(repo_id, private=private, exist_ok=True))
    with translated("reading the remote repository", ctx):
        remote = _remote_state(api, repo_id, ctx.branch)
        tagged = _tag_target(api, repo_id, tag) if tag else None
        published = _previously_published(api, repo_id, remote, bundle_dir)
    _check_visibility(remote, private, repo_id)
    changes = _diff(bundle_dir, plan, remote, published, allow_patterns)
    if tag and tagged is not None:
        _check_tag_unmoved(tag, tagged, remote.head, changes)
    commit_sha = _publish_changes(api, bundle_dir, changes, remote.head, commit_message, ctx, endpoint)
    if tag and tagged is None:
        with translated(f"tagging {tag}", ctx):
            api.create_tag(repo_id, tag=tag, revision=commit_sha or remote.head, tag_message=commit_message)
    return PublishResult(
        repo_url=repo_url,
        commit_sha=commit_sha,
        tag=tag,
        files_uploaded=tuple(f.path for f in changes.additions),
        files_deleted=changes.deletions,
        bytes_uploaded=sum(f.size for f in changes.additions),
    )


def hub_token() -> str:
    """This machine's Hub token (``HF_TOKEN``, else the huggingface_hub login); ``PublishError`` without one."""
    return _resolve_token(None)


def _resolve_token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise PublishError(
            "not logged in to the Hugging Face Hub",
            hint="run `hf auth login` or set HF_TOKEN",
        )
    return found


def _remote_state(api: Any, repo_id: str, branch: str) -> _Remote:
    from huggingface_hub.hf_api import RepoFile

    info = api.model_info(repo_id, revision=branch)
    tree = api.list_repo_tree(repo_id, recursive=True, revision=info.sha)
    files = {f.path: f for f in tree if isinstance(f, RepoFile)}
    return _Remote(head=info.sha, private=bool(info.private), files=files)


def _check_visibility(remote: _Remote, private: bool, repo_id: str) -> None:
    if private and not remote.private:
        raise PublishError(
            f"{repo_id} already exists and is public; refusing to publish a private bundle into it",
            hint="make the repo private in its Hub settings first, or publish without --private",
        )


def _previously_published(api: Any, repo_id: str, remote: _Remote, bundle_dir: Path) -> set[str]:
    """Paths the last publish put on the Hub, read from its ``manifest.json``.

    Only these are ever deleted, so files someone added to the repo by hand survive.
    """
    previous = remote.files.get(MANIFEST_NAME)
    if previous is None:
        return set()
    if _same_content(bundle_dir / MANIFEST_NAME, previous):
        return _manifest_paths(bundle_dir / MANIFEST_NAME) | {MANIFEST_NAME}
    with tempfile.TemporaryDirectory(prefix="zoo-publish-") as tmp:
        local = Path(api.hf_hub_download(repo_id, MANIFEST_NAME, revision=remote.head, cache_dir=tmp))
        return _manifest_paths(local) | {MANIFEST_NAME}


def _manifest_paths(path: Path) -> set[str]:
    """The paths a manifest lists; a malformed one counts as listing nothing."""
    try:
        return {entry.path for entry in Manifest.model_validate_json(path.read_bytes()).files}
    except (OSError, ValueError):
        return set()


def _diff(
    bundle_dir: Path, plan: PublishPlan, remote: _Remote, published: set[str], allow_patterns: list[str] | None
) -> _Changes:
    """Files whose content differs from the remote, and previously published files the bundle no longer has."""
    additions = tuple(f for f in plan.files if not _unchanged(bundle_dir / f.path, f, remote.files.get(f.path)))
    local = {f.path for f in plan.files}
    gone = (published & remote.files.keys()) - local - KEEP_REMOTE
    return _Changes(additions=additions, deletions=tuple(sorted(p for p in gone if selected(p, allow_patterns))))


def _unchanged(local: Path, planned: PlannedFile, remote: Any) -> bool:
    if remote is None or remote.size != planned.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == planned.sha256
    return remote.blob_id == git_blob_oid(local)  # regular files are only known by their git blob id


def _same_content(local: Path, remote: Any) -> bool:
    if remote.size != local.stat().st_size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == sha256_file(local)
    return remote.blob_id == git_blob_oid(local)


def _publish_changes(
    api: Any, bundle_dir: Path, changes: _Changes, head: str, message: str, ctx: HubContext, endpoint: str | None
) -> str | None:
    if not (changes.additions or changes.deletions):
        return None
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if any(f.path == "README.md" for f in changes.additions):
        validate_card(bundle_dir / "README.md", endpoint=endpoint, token=ctx.token)
    adds = [CommitOperationAdd(f.path, str(bundle_dir / f.path)) for f in changes.additions]
    deletes = [CommitOperationDelete(path_in_repo=p) for p in changes.deletions]
    with translated("uploading files", ctx):
        # the client already retries each LFS request; uploading first keeps the commit retry below cheap
        api.preupload_lfs_files(ctx.repo_id, additions=adds, revision=ctx.branch, free_memory=False)
    with translated("committing", ctx):
        commit = _retry_transient(
            lambda: api.create_commit(
                ctx.repo_id, [*adds, *deletes], commit_message=message, revision=ctx.branch, parent_commit=head
            )
        )
    return commit.oid


def _retry_transient(call: Callable[[], Any]) -> Any:
    """Retry the commit POST on 429/5xx, which huggingface_hub does not retry.

    Safe because the commit carries ``parent_commit``: if an earlier attempt did land,
    the retry fails with 412 instead of committing twice.
    """
    from huggingface_hub.errors import HfHubHTTPError

    for wait in COMMIT_RETRY_WAITS:
        try:
            return call()
        except HfHubHTTPError as exc:
            if not _is_transient(exc):
                raise
            time.sleep(wait)
    return call()


def _is_transient(exc: Any) -> bool:
    status = exc.response.status_code if exc.response is not None else 0
    return status == 429 or status >= 500


def _tag_target(api: Any, repo_id: str, tag: str) -> str | None:
    return {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}.get(tag)


def _check_tag_unmoved(tag: str, tagged: str, head: str, changes: _Changes) -> None:
    """Tags mark releases: refuse before committing anything if the tag would have to move."""
    if tagged == head and not (changes.additions or changes.deletions):
        return
    raise PublishError(
        f"tag {tag} already exists on commit {tagged[:12]} and would have to move to publish this bundle",
        hint="tags mark releases and are not moved: choose a new tag",
    )


# -- card validation ----------------------------------------------------------------------


def validate_card(card_path: Path, endpoint: str | None = None, token: str | None = None) -> list[str]:
    """Check a model card's front matter locally, then with the Hub's ``/api/validate-yaml``.

    Returns the Hub's warnings; raises :class:`PublishError` when the card is refused.
    The raw file is sent, as ``create_commit`` does: ``ModelCard.validate()`` would send a
    re-serialized card (e.g. ``tags: x`` normalized to a list) and always to the default
    endpoint without a token.
    """
    from huggingface_hub import ModelCard, constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    path = Path(card_path)
    if not path.is_file():
        raise PublishError(f"{path}: model card not found")
    try:
        ModelCard.load(path)  # local parse first: a broken header never needs the network
    except Exception as exc:  # yaml and card-data parsers raise several unrelated types
        raise PublishError(f"{path.name}: front matter cannot be parsed ({exc})", hint="fix the YAML header") from exc
    base = (endpoint or constants.ENDPOINT).rstrip("/")
    ctx = HubContext("", base, "main", token or "")
    with translated("validating the model card", ctx):
        payload = {"repoType": "model", "content": path.read_text(encoding="utf-8")}
        response = get_session().post(f"{base}/api/validate-yaml", json=payload, headers=build_hf_headers(token=token))
        if response.status_code == 400:
            raise _card_refused(path, response)
        hf_raise_for_status(response)
    return [w.get("message", "") for w in response.json().get("warnings", [])]


def _card_refused(path: Path, response: Any) -> PublishError:
    try:
        errors = [e.get("message", "") for e in response.json().get("errors", [])]
    except ValueError:
        errors = [response.text]
    details = "".join(f"\n  - {e}" for e in errors)
    return PublishError(f"the Hub refused the front matter of {path.name}:{details}", hint="fix the card's YAML header")
