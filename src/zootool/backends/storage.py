"""Which weight formats each backend can store, said once: the planner refuses what the exporter could not do.

Plain functions over a scheme's per-group format (``zoo_data.QuantSpec``): no imports, so the
planner can ask before any download and the exporters can ask again without importing each other.
"""

from __future__ import annotations

from typing import Any

COREML_KMEANS_BITS = (1, 2, 3, 4, 6, 8)


def coreai_refusal(group: str, spec: Any) -> str | None:
    """Core AI stores symmetric int8/int4 blocks, and k-means LUTs for stacked experts only (``lut_to_dense``)."""
    if spec.method == "symmetric" and spec.bits in (4, 8):
        return None
    if spec.method == "kmeans" and group == "experts":
        return None
    return f"Core AI cannot store {group} weights as {spec.method} {spec.bits}-bit"


def coreml_refusal(group: str, spec: Any) -> str | None:
    """Core ML stores linear (symmetric or affine) int8/int4 and k-means palettes of 1-4, 6 or 8 bits."""
    if getattr(spec, "clip_search", False):  # coremltools computes its own min-max scales when it compresses
        return f"tensor group {group!r}: the Core ML backend has no clipping search (its compressor sets the scales)"
    if spec.method == "kmeans" and spec.bits in COREML_KMEANS_BITS:
        return None
    if spec.method in ("symmetric", "affine") and spec.bits in (4, 8):
        return None
    return f"tensor group {group!r}: Core ML cannot store {spec.method} {spec.bits}-bit weights"
