"""Server-side decisions: LFS or regular, ignored or not, and card front-matter validation."""

from __future__ import annotations

import fnmatch
import posixpath
import re

import yaml

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular files above 10 MiB

_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack"
    " *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors"
    " *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents* *.mlirb"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS)

KNOWN_LICENSES = frozenset(
    "apache-2.0 mit bsd-3-clause cc-by-4.0 cc-by-nc-4.0 cc-by-sa-4.0 gpl-3.0 lgpl-3.0 agpl-3.0"
    " llama3 llama3.1 llama3.2 gemma openrail other unknown".split()
)
KNOWN_PIPELINE_TAGS = frozenset(
    "text-generation text2text-generation fill-mask feature-extraction text-classification"
    " token-classification image-classification automatic-speech-recognition".split()
)
BASE_MODEL_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def lfs_patterns(gitattributes: str) -> list[str]:
    """Patterns of a ``.gitattributes`` file that route files through LFS."""
    lines = (line.split() for line in gitattributes.splitlines())
    return [parts[0] for parts in lines if parts and "filter=lfs" in parts[1:]]


def matches(path: str, pattern: str) -> bool:
    """Gitignore-style match: a pattern without ``/`` applies to the file name."""
    pattern = pattern.strip()
    if pattern.endswith("/"):
        return path.startswith(pattern.lstrip("/"))
    if "/" in pattern:
        return fnmatch.fnmatchcase(path, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(posixpath.basename(path), pattern)


def upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    """``lfs`` for big, binary-looking or pattern-matched files, ``regular`` otherwise.

    ``patterns`` are the repo's own ``.gitattributes`` LFS patterns (none if it has no such file).
    """
    if size == 0:
        return "regular"
    if size >= LFS_SIZE_THRESHOLD or looks_binary(sample, truncated=size > len(sample)):
        return "lfs"
    return "lfs" if any(matches(path, p) for p in patterns) else "regular"


def looks_binary(data: bytes, *, truncated: bool = False) -> bool:
    """The Hub's test for content git must not store: a NUL byte, or bytes that are not UTF-8.

    A ``truncated`` sample (the first bytes of a longer file) may end inside a multi-byte
    character; only that last, incomplete character is forgiven.
    """
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return not (truncated and exc.reason == "unexpected end of data")
    return False


def is_ignored(path: str, gitignore: str | None) -> bool:
    if not gitignore:
        return False
    patterns = [line for line in gitignore.splitlines() if line.strip() and not line.startswith("#")]
    return any(matches(path, p) for p in patterns)


def validate_card(content: str) -> tuple[list[str], list[str]]:
    """Check a README's YAML front matter; returns ``(errors, warnings)``."""
    match = _FRONT_MATTER.match(content)
    if match is None:
        return [], ["Empty or missing yaml metadata in repo card"]
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"Invalid YAML in front matter: {exc.__class__.__name__}"], []
    if data is None:
        return [], ["Empty or missing yaml metadata in repo card"]
    if not isinstance(data, dict):
        return ["Front matter must be a YAML mapping"], []
    return _field_errors(data), []


def _field_errors(data: dict) -> list[str]:
    errors = []
    license_id = data.get("license")
    if license_id is not None and license_id not in KNOWN_LICENSES:
        errors.append(f'"license" must be a known license id or "other", got {license_id!r}')
    if license_id == "other" and not data.get("license_name"):
        errors.append('"license_name" is required when "license" is "other"')
    tags = data.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        errors.append('"tags" must be an array of strings')
    tag = data.get("pipeline_tag")
    if tag is not None and tag not in KNOWN_PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" must be a known task, got {tag!r}')
    relation = data.get("base_model_relation")
    if relation is not None and relation not in BASE_MODEL_RELATIONS:
        errors.append(f'"base_model_relation" must be one of {sorted(BASE_MODEL_RELATIONS)}')
    return errors
