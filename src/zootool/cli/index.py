"""``zoo index [--check]``: the command's logic, kept out of ``cli.py`` (which only prints and exits)."""

from __future__ import annotations

from typing import Any

from ..catalog.index import check_index, render_index, write_index
from ..config.zoo_data import Zoo
from ..errors import ConfigError
from ..paths import relative


def index_command(zoo: Zoo, check: bool) -> dict[str, Any]:
    """Regenerate the catalog, or with ``check`` verify it is current.

    Returns a summary: ``files`` (every generated file, zoo-relative), ``changed`` (what
    was written or removed; empty for ``check``), ``up_to_date``. A stale catalog under
    ``check`` raises ``ConfigError`` (exit code 2) naming the stale files.
    """
    files = [relative(path, zoo.root) for path in render_index(zoo)]
    if check:
        stale = check_index(zoo)
        if stale:
            raise ConfigError(
                f"the zoo catalog is out of date: {', '.join(stale)}", "run `zoo index` and commit"
            )
        return {"files": files, "changed": [], "up_to_date": True}
    changed = [relative(path, zoo.root) for path in write_index(zoo)]
    return {"files": files, "changed": changed, "up_to_date": True}
