"""``zoo list`` rows kept from the last run with the same inputs, in ``.zoo-cache/list.json``.

Resolving every recipe x target needs pydantic's model machinery and the whole recipe
schema, which is most of ``zoo list``'s start-up. The rows depend only on the recipe and
zoo data files, the zoo root and zootool's own code, so a run keyed on all of those can
answer from the rows a previous run resolved. Data files are keyed by content; zootool's
code and pydantic by file size and modification time (an edit or an upgrade changes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path

from .. import __version__
from ..errors import ZooError
from .list_rows import ListRow

CACHE_FILE = Path(".zoo-cache") / "list.json"
# Bump when the cache file's layout or the key's recipe changes.
FORMAT = 1


def cached_rows(root: Path) -> list[ListRow] | None:
    """The rows stored for exactly these inputs, or None (no cache, other inputs, unreadable)."""
    try:
        stored = json.loads((root / CACHE_FILE).read_text())
        if stored.get("key") != inputs_key(root):
            return None
        return [ListRow.from_json(row) for row in stored["rows"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store_rows(root: Path, rows: list[ListRow]) -> None:
    """Keep ``rows`` for the next run; a zoo that cannot be written to just stays uncached."""
    path = root / CACHE_FILE
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    document = {"key": inputs_key(root), "rows": [row.to_json() for row in rows]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(document))
        partial.replace(path)  # atomic: a concurrent reader sees the old file or the new one
    except OSError:
        partial.unlink(missing_ok=True)


def inputs_key(root: Path) -> str:
    """sha256 over everything the rows are computed from."""
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0{root.resolve()}\0".encode())
    for path in _code_files():
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    for path in _data_files(root):
        digest.update(f"{path.relative_to(root)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _code_files() -> Iterator[Path]:
    yield from sorted(Path(__file__).parents[1].rglob("*.py"))
    pydantic = find_spec("pydantic")
    if pydantic is not None and pydantic.origin:
        yield Path(pydantic.origin).with_name("version.py")


def _data_files(root: Path) -> list[Path]:
    """What ``resolve_all`` reads: recipes/*.toml and the zoo data (zoo/**.toml)."""
    return sorted((root / "recipes").glob("*.toml")) + sorted((root / "zoo").rglob("*.toml"))


def list_rows(root: Path, display: Callable[[Path], str]) -> tuple[list[ListRow], list[ZooError]]:
    """Every row, from the cache when the inputs are unchanged; else resolved, and kept if all resolved.

    ``display`` names a recipe file in errors. The errors are those of recipes that do not resolve.
    """
    rows = cached_rows(root)
    if rows is not None:
        return rows, []
    from ..config.registry import resolve_all
    from ..config.zoo_data import Zoo

    plans, errors = resolve_all(Zoo(root), display)
    rows = [ListRow.from_plan(plan) for plan in plans]
    if not errors:
        store_rows(root, rows)
    return rows, errors
