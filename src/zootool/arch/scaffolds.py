"""What ``zoo new`` writes into a new recipe, by the kind of model; a family picks one.

Decided once here, and held to the committed recipes by tests/config/test_scaffold.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scaffold:
    """A new recipe's ``[defaults]`` and ``[targets]``."""

    targets: Mapping[str, Mapping[str, Any]]
    defaults: Mapping[str, Any] = field(default_factory=dict)


# Dense decoders: no expert kernel; Core AI targets for OS 27, Core ML ones before it (the
# platform picks the backend); every target int8-all, whose int8 embedding and head may flip
# one gate position (recipes/tiny-llama.toml), so the gate allows one introduced flip.
DENSE = Scaffold(
    targets={target: {"platform": target, "quant": "int8-all"}
             for target in ("mac", "iphone", "mac-macos15", "iphone-ios18")},
    defaults={"kernel": "none", "gate": {"margin": 0.1, "max-introduced-flips": 1}},
)

# Decoders whose state Core ML cannot hold (a short-conv window): Core AI targets only.
DENSE_CORE_AI = Scaffold(
    targets={target: DENSE.targets[target] for target in ("mac", "iphone")}, defaults=DENSE.defaults,
)

# Routed-expert decoders: sym8 experts on the Mac (the gather_qmm layout), 4-bit k-means
# experts on the iPhone, through the stock GatherMM composite (zoo defaults' kernel).
MOE = Scaffold(
    targets={"mac": {"platform": "mac", "quant": "sym8"}, "iphone": {"platform": "iphone", "quant": "int4km"}},
)
