"""In-memory repositories: commits, branches, tags, files; LFS objects on disk.

Every mutation happens under one lock and swaps in a fully built commit, so a
request that fails half-way never leaves a partial commit behind.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from .errors import HubError, entry_not_found, revision_not_found
from .objects import digest_of, git_blob_oid, lfs_pointer
from .rules import DEFAULT_GITATTRIBUTES
from .xet import XetFile


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit: a regular blob (``content``) or an LFS object (``lfs_sha256``).

    An LFS file uploaded through Xet also has its ``xet_hash``; its bytes live in the Xet CAS.
    """

    path: str
    size: int
    oid: str
    lfs_sha256: str | None = None
    content: bytes | None = field(default=None, repr=False)
    xet_hash: str | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.lfs_sha256 or "", self.size))

    @classmethod
    def regular(cls, path: str, content: bytes) -> FileEntry:
        return cls(path=path, size=len(content), oid=git_blob_oid(content), content=content)

    @classmethod
    def lfs(cls, path: str, sha256: str, size: int, xet_hash: str | None = None) -> FileEntry:
        oid = git_blob_oid(lfs_pointer(sha256, size))
        return cls(path=path, size=size, oid=oid, lfs_sha256=sha256, xet_hash=xet_hash)


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    message: str
    description: str
    files: Mapping[str, FileEntry]
    date: str


@dataclass(frozen=True)
class AddFile:
    entry: FileEntry


@dataclass(frozen=True)
class DeletePath:
    path: str
    folder: bool = False


Operation = AddFile | DeletePath


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    lfs_objects: dict[str, int] = field(default_factory=dict)


class Store:
    """All repositories of one server; LFS content lives under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.xet_files: dict[str, XetFile] = {}  # sha256 -> a committed file stored in Xet, for the CDN
        self._counter = itertools.count(1)

    # -- repositories -------------------------------------------------
    def get(self, repo_id: str) -> Repo | None:
        with self.lock:
            return self.repos.get(repo_id)

    def create_repo(self, repo_id: str, *, private: bool) -> Repo:
        """Create a repo whose first commit holds ``.gitattributes``, as the Hub does."""
        with self.lock:
            if repo_id in self.repos:
                raise HubError(409, "You already created this model repo")
            repo = Repo(repo_id=repo_id, private=private, created_at=_now())
            first = FileEntry.regular(".gitattributes", DEFAULT_GITATTRIBUTES.encode())
            self._append(repo, "main", None, {first.path: first}, "initial commit", "")
            self.repos[repo_id] = repo
            return repo

    # -- revisions ----------------------------------------------------
    def resolve(self, repo: Repo, rev: str) -> Commit:
        """A branch, a tag or a full commit sha, in that order."""
        with self.lock:
            sha = repo.branches.get(rev) or repo.tags.get(rev)
            if sha is None and rev in repo.commits:
                sha = rev
            if sha is None:
                raise revision_not_found(rev)
            return repo.commits[sha]

    def branch_head(self, repo: Repo, branch: str) -> Commit:
        with self.lock:
            if branch not in repo.branches:
                raise revision_not_found(branch)
            return repo.commits[repo.branches[branch]]

    def add_tag(self, repo: Repo, tag: str, rev: str) -> str:
        with self.lock:
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            target = self.resolve(repo, rev).sha
            repo.tags[tag] = target
            return target

    # -- commits ------------------------------------------------------
    def commit(
        self,
        repo: Repo,
        branch: str,
        operations: Iterable[Operation],
        *,
        message: str,
        description: str = "",
        parent: str | None = None,
    ) -> Commit:
        """Apply all operations or none; ``parent`` guards against a moved branch (412)."""
        with self.lock:
            head = self.branch_head(repo, branch)
            if parent is not None and parent != head.sha:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = _apply(dict(head.files), operations, repo)
            return self._append(repo, branch, head.sha, files, message, description)

    def _append(
        self, repo: Repo, branch: str, parent: str | None, files: dict[str, FileEntry], message: str, description: str
    ) -> Commit:
        tree = sorted(f"{path} {entry.oid}" for path, entry in files.items())
        sha = digest_of(parent or "", message, str(next(self._counter)), *tree)
        commit = Commit(sha, parent, message, description, MappingProxyType(files), _now())
        repo.commits[sha] = commit
        repo.history.append(sha)
        repo.branches[branch] = sha
        return commit

    # -- LFS objects --------------------------------------------------
    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def has_object(self, repo: Repo, sha256: str, size: int | None = None) -> bool:
        with self.lock:
            known = repo.lfs_objects.get(sha256)
        return known is not None and (size is None or known == size)

    def ingest(self, repo: Repo, sha256: str, size: int, staged: Path) -> None:
        """Move a verified upload into the object store and make it visible to ``repo``."""
        target = self.object_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            staged.unlink()
        else:
            os.replace(staged, target)
        with self.lock:
            repo.lfs_objects[sha256] = size

    def remember_xet(self, found: XetFile) -> None:
        with self.lock:
            self.xet_files[found.sha256] = found

    def xet_file(self, sha256: str) -> XetFile | None:
        with self.lock:
            return self.xet_files.get(sha256)

    def staging_dir(self) -> Path:
        path = self.root / "staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _apply(files: dict[str, FileEntry], operations: Iterable[Operation], repo: Repo) -> dict[str, FileEntry]:
    for op in operations:
        if isinstance(op, AddFile):
            _check_lfs_present(op.entry, repo)
            files[op.entry.path] = op.entry
        elif op.folder:
            _delete_folder(files, op.path)
        elif files.pop(op.path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {op.path}", code="EntryNotFound")
    return files


def _check_lfs_present(entry: FileEntry, repo: Repo) -> None:
    """An LFS pointer must name an object this repo received (Xet files were checked against their shards)."""
    if entry.is_lfs and entry.xet_hash is None and repo.lfs_objects.get(entry.lfs_sha256 or "") != entry.size:
        raise HubError(422, f"LFS object for {entry.path} was never uploaded (oid {entry.lfs_sha256})")


def _delete_folder(files: dict[str, FileEntry], folder: str) -> None:
    prefix = folder.rstrip("/") + "/"
    doomed = [path for path in files if path.startswith(prefix)]
    if not doomed:
        raise entry_not_found(folder)
    for path in doomed:
        del files[path]
