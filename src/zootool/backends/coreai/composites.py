"""The converter's composite ops a decode graph may compute through (``Decoder.use_composites``).

A composite call site (an ``RMSNormImpl`` or ``RoPE`` module of ``coreai_torch.composite_ops``)
becomes one ``invoke`` of a private graph that carries the op's name and attributes, the form
Apple's exporter gives RMSNorm and RoPE and a device runtime can map to a fused kernel. Only
``TorchConverter.add_pytorch_module`` externalizes, with these specs (see docs/coreai-notes.md).
"""

from __future__ import annotations

import os
from typing import Any

# Opt-in: on coreai-torch 0.4.3 the composites triple the export's CPU time (one torch.export per
# call site) and the Linux runtime's rms_norm loses precision given fp16 operands (docs/coreai-notes.md).
ENV = "ZOO_COREAI_COMPOSITES"


def composites_enabled() -> bool:
    """Whether Core AI exports compute norms and RoPE through the composites (``ZOO_COREAI_COMPOSITES=1``)."""
    return os.environ.get(ENV) == "1"

# composite op name -> (class in coreai_torch.composite_ops, attributes the op declares)
SPECS = {
    "rms_norm": ("RMSNormImpl", ["axes", "eps"]),
    "rope": ("RoPE", ["scale", "base", "dims", "interleaved"]),
}


def externalize_specs(names: list[str]) -> list[Any]:
    """``ExternalizeSpec``s of the named composites."""
    from coreai_torch import ExternalizeSpec, composite_ops

    return [ExternalizeSpec(target_class=getattr(composite_ops, SPECS[name][0]), composite_op_name=name,
                            composite_attrs=SPECS[name][1]) for name in names]
