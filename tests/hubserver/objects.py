"""Object ids computed the way the Hub reports them (git blob ids, LFS pointers)."""

from __future__ import annotations

import hashlib

LFS_SPEC = "https://git-lfs.github.com/spec/v1"


def git_blob_oid(content: bytes) -> str:
    """Git's blob id: sha1 over ``blob <size>\\0`` followed by the content."""
    digest = hashlib.sha1(b"blob %d\x00" % len(content))
    digest.update(content)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git stores in place of an LFS object."""
    return f"version {LFS_SPEC}\noid sha256:{sha256}\nsize {size}\n".encode()


def digest_of(*parts: str) -> str:
    """A stable 40-hex id for a tree or a commit built from its parts."""
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()
