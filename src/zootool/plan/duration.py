"""A rough prediction of a build's wall time, from the plan alone (for ``zoo status`` and scheduling views).

Each stage costs a fixed start (Python and torch imports, ``torch.export``, the converter's
set-up, the runtime's load) plus a share per parameter. The fixed parts were measured on this
zoo's 2-core Linux machines with the tiny fixtures (2.9M and 6.3M parameters: fetch 3 s,
export 15 s, gate 38 s with the fp16 ceiling uncached); the per-parameter rates are a first
guess to be re-measured on a full-size build (``bench/build_bench.py``). k-means schemes
cluster every expert row and take longer to quantize.
"""

from __future__ import annotations

from ..config.recipe import GeneratedSource
from .resolve import BuildPlan

FIXED_SECONDS = {"fetch": 3.0, "export": 15.0, "gate": 38.0, "package": 1.0}
SECONDS_PER_BILLION = {"fetch": 60.0, "export": 400.0, "gate": 900.0, "package": 20.0}
DOWNLOAD_SECONDS_PER_GB = 20.0  # a Hub checkpoint over a ~50 MB/s link
KMEANS_FACTOR = 3.0  # export of a k-means scheme against a symmetric one


def estimated_seconds(plan: BuildPlan, gate: bool = True) -> float:
    """Predicted wall time of building ``plan`` from nothing (no cached checkpoint or ceiling)."""
    billions = plan.estimate.params / 1e9
    stages = {name: FIXED_SECONDS[name] + SECONDS_PER_BILLION[name] * billions for name in FIXED_SECONDS}
    if not isinstance(plan.source, GeneratedSource):
        stages["fetch"] += DOWNLOAD_SECONDS_PER_GB * plan.estimate.params * 2 / 1e9
    if any(spec.method == "kmeans" for spec in plan.scheme.quantize.values()):
        stages["export"] *= KMEANS_FACTOR
    if not gate:
        stages.pop("gate")
    return round(sum(stages.values()), 1)
