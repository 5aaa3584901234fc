"""Publish one row of a zoo-wide build from where it was built (``zoo build --publish``).

Where: a worker's own zoo root (Ray), the checkout (a local worker, or a row reused there). How:
exactly ``zoo publish``: verify, the gate required, one atomic commit, no commit when the Hub
already has the bundle, the tag. The result says where the bundle went (``Published``), so a
driver whose worker published elsewhere records the publish in the checkout.
"""

from __future__ import annotations

from pathlib import Path

from .job_models import JobResult, PublishRequest, Published, failed

HIDDEN = "***"


def publish_row(root: Path, built: JobResult, request: PublishRequest, token: str | None) -> JobResult:
    """``built`` (a row built or reused at ``root``) published; a failure is the row's, with exit 7 or 8."""
    from ..cli.publish import publish_command
    from ..config.zoo_data import Zoo

    try:
        answer = publish_command(Zoo(root), built.model, built.target, repo=None, private=request.private,
                                 revision=None, endpoint=request.endpoint, dry_run=False, record=request.record,
                                 token=token)
    except Exception as exc:  # noqa: BLE001 - the row fails, the others go on
        problem = failed(built.model, built.target, exc)
        return built.model_copy(update={
            "outcome": "failed", "exit_code": problem.exit_code, "hint": _hidden(problem.hint, token),
            "message": _hidden(f"built, not published: {problem.message}", token)})
    published = Published(repo=answer["repo"], commit_sha=answer["commit_sha"], tag=answer["tag"])
    return built.model_copy(update={"outcome": "published" if published.commit_sha else "unchanged",
                                    "message": f"{built.message}; {describe(published)}", "published": published})


def describe(published: Published) -> str:
    if published.commit_sha:
        return f"published {published.repo} commit {published.commit_sha[:12]} tag {published.tag}"
    return f"{published.repo} already has this bundle: no commit (tag {published.tag})"


def _hidden(text: str, token: str | None) -> str:
    """Hub errors are scrubbed where they are raised; this catches what an unexpected one might echo."""
    return text.replace(token, HIDDEN) if token else text
