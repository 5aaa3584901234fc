"""How converted Core ML programs name the weights of a torch module; shared by export, compression and runtime."""

from __future__ import annotations

WEIGHT_SUFFIX = "_to_fp16"  # what the fp16 pass appends to a weight constant's name
ALIASES_KEY = "zootool.weight_aliases"
FOLDED_KEY = "zootool.folded_weights"


def const_name(parameter_name: str) -> str:
    """The converted model's weight constant for a torch parameter path (jit frontend naming)."""
    return parameter_name.replace(".", "_") + WEIGHT_SUFFIX
