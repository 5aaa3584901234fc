"""What a hint may offer: only the choices that every check of ``plan.resolve`` lets through for a target."""

from __future__ import annotations

from ..backends.registry import scheme_refusal
from ..config.zoo_data import Kernel, Zoo


def usable_schemes(zoo: Zoo, backend_id: str, kernel: Kernel | None) -> list[str]:
    """Scheme ids this backend maps and stores and ``kernel`` takes (any kernel's when it is unknown)."""
    return [
        scheme_id for scheme_id, scheme in zoo.schemes.items()
        if backend_id in scheme.backends and not scheme_refusal(backend_id, scheme)
        and (kernel is None or scheme_id in kernel.schemes)
    ]
