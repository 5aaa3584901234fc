"""Where the zoo checkout is: a module without pydantic, so that finding it costs no schema import."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError


def find_root(start: Path | None = None) -> Path:
    """The zoo checkout: ``$ZOO_ROOT``, else the nearest ancestor with ``recipes/`` and ``zoo/``."""
    env = os.environ.get("ZOO_ROOT")
    if env:
        return check_root(Path(env).resolve(), "ZOO_ROOT")
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "recipes").is_dir() and (candidate / "zoo").is_dir():
            return candidate
    raise ConfigError(
        f"no zoo found from {here}: no folder above it holds both recipes/ and zoo/",
        "run zoo inside a zoo checkout, or set ZOO_ROOT / --root",
    )


def check_root(root: Path, given_by: str) -> Path:
    """A root the user named (``--root``, ``$ZOO_ROOT``) must be a zoo, not silently an empty one."""
    missing = [name for name in ("recipes", "zoo") if not (root / name).is_dir()]
    if missing:
        raise ConfigError(
            f"{given_by} {root}: not a zoo checkout (no {' or '.join(n + '/' for n in missing)})",
            "point it at the folder that holds recipes/ and zoo/, or unset it to search upward",
        )
    return root
