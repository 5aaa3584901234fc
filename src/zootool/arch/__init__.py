"""Architecture families known to the zoo (``arch.registry``) and the blocks they are built from."""

from __future__ import annotations

from .registry import FAMILIES, Architecture

__all__ = ["FAMILIES", "Architecture"]
