"""The one exception route handlers raise; the handler turns it into a Hub-shaped error."""

from __future__ import annotations


class HubError(Exception):
    """An HTTP error answered the way the Hub does: JSON body plus ``X-Error-*`` headers.

    ``code`` goes to ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
    ``EntryNotFound``), which is what huggingface_hub maps to its typed errors.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def repo_not_found(repo_id: str, *, authenticated: bool) -> HubError:
    """Missing, or private and not visible: the Hub answers 401 without a token, 404 with one."""
    status = 404 if authenticated else 401
    return HubError(status, f"Repository not found: {repo_id}", code="RepoNotFound")


def revision_not_found(rev: str) -> HubError:
    return HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")


def entry_not_found(path: str, commit_sha: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit_sha} if commit_sha else None
    return HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)
