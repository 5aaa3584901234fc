"""Which rows (model x target) a zoo-wide ``zoo build`` or ``zoo publish`` works on.

Models and targets are named exactly or by glob (``tiny-*``); ``--all`` takes every row and
``--changed`` keeps the rows ``zoo status`` says need the step: never built or outdated for a
build, not published at the current plan for a publish. Rows a build would refuse anyway
(over budget, an unpinned source, Hub weights not in the cache while HF_HUB_OFFLINE is set)
are left out of ``--changed`` and listed as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..catalog.status import BLOCKED, TO_BUILD, Row, RowError, zoo_rows
from ..config.schema_base import did_you_mean
from ..config.zoo_data import Zoo
from ..errors import ConfigError, UnknownModelError, UnknownTargetError

Step = Literal["build", "publish"]


class Selection(BaseModel):
    rows: list[Row]  # to run, in the zoo's order
    skipped: list[Row]  # matched, left out by --changed because a build would be refused
    errors: list[RowError]  # matched recipes or targets that do not resolve


def select(
    zoo: Zoo, display: Callable[[Path], str], models: list[str], targets: list[str], *,
    everything: bool, changed: bool, step: Step = "build",
) -> Selection:
    """The rows matching ``models`` (all with ``everything`` or ``changed``) and ``targets`` (all if empty)."""
    if not models and not (everything or changed):
        raise ConfigError("name the models to work on (globs such as 'tiny-*' work), or pass --all",
                          "zoo status lists every model x target")
    rows, errors = zoo_rows(zoo, display)
    patterns = list(models) or ["*"]
    known = {row.status.model for row in rows} | {error.model for error in errors}
    for pattern in patterns:
        if not any(fnmatchcase(name, pattern) for name in known):
            raise UnknownModelError(f"no recipe matches '{pattern}'", did_you_mean(pattern, known))
    matched = [row for row in rows if _matches(row.status.model, row.status.target, patterns, targets)]
    broken = [e for e in errors if _matches(e.model, e.target, patterns, targets, any_target=e.target is None)]
    if targets and not matched and not broken:
        names = {row.status.target for row in rows if _matches(row.status.model, "", patterns, [])}
        raise UnknownTargetError(f"no target of the selected models matches {', '.join(targets)}",
                                 "known targets: " + ", ".join(sorted(names)))
    if not changed:
        return Selection(rows=matched, skipped=[], errors=broken)
    wanted = (lambda row: row.status.state in TO_BUILD) if step == "build" else (lambda row: not row.status.published)
    return Selection(
        rows=[row for row in matched if row.status.state not in BLOCKED and wanted(row)],
        skipped=[row for row in matched if row.status.state in BLOCKED],
        errors=broken,
    )


def _matches(model: str, target: str | None, patterns: list[str], targets: list[str], any_target: bool = False) -> bool:
    if not any(fnmatchcase(model, pattern) for pattern in patterns):
        return False
    return any_target or not targets or any(fnmatchcase(target or "", pattern) for pattern in targets)
