"""Sizes as people read them; no imports, so the lightest views can use it."""


def gb(n: int) -> str:
    """Human size in decimal units, as the zoo's published sizes are."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
