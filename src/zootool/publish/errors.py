"""Hub and network failures of a publish, translated into :class:`PublishError` with a next step.

An ordered table: the first link of the exception chain that is recognised decides the
message. Anything unknown propagates as a bug. The token is scrubbed from every text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import PublishError, ZooError

RESUME_HINT = "running the same command again resumes: blobs already uploaded are kept and not sent again"
# hf_xet reports an HTTP failure of the Xet token request as text only, e.g. "(500 Internal Server Error)"
_STATUS_IN_TEXT = re.compile(r"\((\d{3}) [A-Z][^)]*\)")
_NO_XET = frozenset({404, 405, 501})  # the endpoint has no Xet token route: an LFS-only Hub or mirror


@dataclass(frozen=True)
class HubContext:
    """Where a publish talks to, for messages; ``token`` only so that it can be scrubbed."""

    repo_id: str
    where: str
    branch: str
    token: str


@contextlib.contextmanager
def translated(stage: str, ctx: HubContext) -> Iterator[None]:
    """Turn Hub and network failures during ``stage`` into PublishError."""
    try:
        yield
    except ZooError:
        raise
    except Exception as exc:
        described = _describe(exc, stage, ctx)
        if described is None:
            raise
        message, hint = (_scrub(text, ctx.token) for text in described)
        raise PublishError(message, hint) from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _describe(exc: BaseException, stage: str, ctx: HubContext) -> tuple[str, str] | None:
    for link in _chain(exc):
        described = _describe_one(link, stage, ctx)
        if described is not None:
            return described
    return None


def _describe_one(link: BaseException, stage: str, ctx: HubContext) -> tuple[str, str] | None:
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(link, RepositoryNotFoundError):
        return (
            f"repository {ctx.repo_id} not found on {ctx.where} while {stage}",
            "check the repo id; a private repo needs a token that can see it",
        )
    if isinstance(link, RevisionNotFoundError):
        return (f"branch {ctx.branch} does not exist in {ctx.repo_id}", "create it first, or publish to main")
    if isinstance(link, HfHubHTTPError) and link.response is not None:
        detail = _first_line(getattr(link, "server_message", None))
        return describe_status(link.response.status_code, stage, ctx, detail)
    if isinstance(link, OfflineModeIsEnabled):
        return ("HF_HUB_OFFLINE is set, so the Hub cannot be reached", "unset HF_HUB_OFFLINE to publish")
    if isinstance(link, httpx2.TransportError):
        return (
            f"cannot reach {ctx.where} while {stage} ({type(link).__name__})",
            f"check the network connection and the --endpoint URL; {resume_hint(stage)}",
        )
    if "/xet-write-token/" in str(link):  # hf_xet raises a bare ConnectionError naming the URL
        return _describe_xet_token(str(link), stage, ctx)
    if isinstance(link, ValueError) and str(link).startswith("Invalid metadata in README.md"):
        return (f"the Hub refused the model card front matter: {link}", "fix the YAML header of README.md")
    return None


def _describe_xet_token(text: str, stage: str, ctx: HubContext) -> tuple[str, str]:
    """A failed Xet token request: no Xet on this endpoint, or an ordinary (often transient) failure."""
    found = _STATUS_IN_TEXT.search(text)
    status = int(found.group(1)) if found else None
    if status is None or status in _NO_XET:
        return (
            f"{ctx.where} refused a Xet upload while {stage}",
            "this endpoint only takes LFS uploads: set HF_HUB_DISABLE_XET=1 before running zoo",
        )
    return describe_status(status, f"{stage} (Xet token)", ctx, "")


_BY_STATUS: dict[int, tuple[str, str]] = {
    401: ("the Hub rejected the token (401 Unauthorized)", "set HF_TOKEN to a valid token, or run `hf auth login`"),
    403: ("the token has no write access to {repo} (403 Forbidden)", "use a token with the write role for it"),
    412: ("{branch} moved while publishing (412): someone else pushed", "re-run; it compares against the new head"),
    429: ("the Hub is rate-limiting requests (429 Too Many Requests)", "wait a few minutes; " + RESUME_HINT),
}


def describe_status(status: int, stage: str, ctx: HubContext, detail: str) -> tuple[str, str]:
    """Message and hint for an HTTP ``status`` the Hub answered during ``stage``."""
    if status >= 500:
        return (f"the Hub answered {status} (server error) while {stage}, after retries",
                f"retry later; {resume_hint(stage)}")
    template, hint = _BY_STATUS.get(status, ("the Hub answered {status}", ""))
    suffix = f": {detail}" if detail and status not in (401, 429) else ""
    return (template.format(repo=ctx.repo_id, branch=ctx.branch, status=status) + f" while {stage}{suffix}", hint)


def resume_hint(stage: str) -> str:
    """What a re-run does after a transient failure at ``stage``: the commit is all-or-nothing."""
    if stage.startswith("tagging"):
        return "the files were committed; running the same command again adds the tag (nothing is uploaded again)"
    return f"no commit was made; {RESUME_HINT}"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
