"""File digests: hashed ahead on a thread, each file version once, a changed file hashed anew."""

from __future__ import annotations

import hashlib
import os

import pytest

from zootool.bundle import digests


def test_hashed_ahead_digest_is_the_file_sha256(tmp_path):
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(3 << 20))
    digests.hash_ahead([big])
    assert digests.sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_file_changed_after_hashing_is_hashed_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    digests.hash_ahead([path])
    before = digests.sha256_file(path)
    path.write_bytes(b"b" * 1001)
    assert digests.sha256_file(path) == hashlib.sha256(b"b" * 1001).hexdigest() != before
    os.utime(path, ns=(1, 1))  # same size, other mtime: another version
    path.write_bytes(b"c" * 1001)
    os.utime(path, ns=(2, 2))
    assert digests.sha256_file(path) == hashlib.sha256(b"c" * 1001).hexdigest()


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        digests.sha256_file(tmp_path / "gone.bin")
