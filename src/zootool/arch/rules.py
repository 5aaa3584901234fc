"""Shape rules that GQA attention families share; each raises ``FieldError`` at the key to fix."""

from __future__ import annotations

from ..config.schema_base import FieldError


def divides(key: str, value: int, whole_key: str, whole: int) -> None:
    """``value`` (at ``key``) must divide ``whole``: e.g. kv heads into query heads."""
    if whole % value:
        raise FieldError(key, f"{value} does not divide {whole_key} ({whole})")


def even_head_dim(key: str, head_dim: int) -> None:
    """RoPE rotates channel pairs, so a head's width must be even."""
    if head_dim % 2:
        raise FieldError(key, f"gives an odd head dim ({head_dim}); RoPE needs an even one")


def at_most(key: str, value: int, limit_key: str, limit: int) -> None:
    if value > limit:
        raise FieldError(key, f"{value} is more than {limit_key} ({limit})")
