"""``zoo index``: the committed catalog, generated from recipes, zoo data and build records only.

Writes ``zoo/README.md`` (a table of every model x target), ``zoo/index.json`` (the
zoo's ``models/index.json`` entries and CoreAIKit catalog entries) and one
``zoo/<id>.md`` card per recipe. The output depends on committed files alone and
holds no timestamps beyond the dates in the records, so ``check_index`` can tell in CI
whether someone changed a recipe and forgot to regenerate.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..config.zoo_data import Zoo
from ..errors import ConfigError
from ..paths import relative
from .markdown import MARKER, MARKER_LINE, card, readme
from .model import ModelEntry, catalog, coreaikit_models, zoo_models

INDEX_SCHEMA_VERSION = 1
README = "README.md"
INDEX_JSON = "index.json"


def render_index(zoo: Zoo) -> dict[Path, str]:
    """Every generated file (absolute path under ``zoo/``) with its exact content."""
    entries = catalog(zoo)
    files = {zoo.data_dir / README: readme(entries), zoo.data_dir / INDEX_JSON: index_json(entries)}
    for entry in entries:
        files[_card_path(zoo, entry)] = card(entry)
    return dict(sorted(files.items()))


def index_json(entries: list[ModelEntry]) -> str:
    """``zoo/index.json``: both catalog shapes, with the marker as its first key."""
    data = {
        "generated_by": MARKER_LINE.removeprefix("<!-- ").removesuffix(" -->"),
        "schema_version": INDEX_SCHEMA_VERSION,
        "models": zoo_models(entries),
        "coreaikit": coreaikit_models(entries),
    }
    return json.dumps(data, indent=2) + "\n"


def write_index(zoo: Zoo) -> list[Path]:
    """Write files whose content changed and delete cards of removed recipes; returns what changed."""
    changed = []
    expected = render_index(zoo)
    for path, text in expected.items():
        if _current(path) != text:
            _write_text_atomic(path, text)
            changed.append(path)
    for orphan in _orphans(zoo, set(expected)):
        orphan.unlink()
        changed.append(orphan)
    return changed


def check_index(zoo: Zoo) -> list[str]:
    """Zoo-relative names of generated files that are missing, stale or orphaned (empty: up to date)."""
    expected = render_index(zoo)
    stale = [relative(path, zoo.root) for path, text in expected.items() if _current(path) != text]
    stale += [f"{relative(path, zoo.root)} (no recipe any more)" for path in _orphans(zoo, set(expected))]
    return stale


def _card_path(zoo: Zoo, entry: ModelEntry) -> Path:
    path = zoo.data_dir / f"{entry.recipe.id}.md"
    if path.name.lower() == README.lower():
        raise ConfigError(f"{entry.recipe_file}: model id '{entry.recipe.id}' would overwrite zoo/{README}",
                          "choose another model id")
    return path


def _orphans(zoo: Zoo, expected: set[Path]) -> list[Path]:
    """Generated cards left behind by deleted recipes (hand-written markdown is never touched)."""
    return [
        path for path in sorted(zoo.data_dir.glob("*.md"))
        if path not in expected and MARKER in (_current(path) or "").split("\n", 1)[0]
    ]


def _current(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are read by anyone with the checkout
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
