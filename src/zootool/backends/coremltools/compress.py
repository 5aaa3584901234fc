"""Which weight constants of a converted model get which Core ML compression.

A quant scheme names a storage format per tensor group (``zoo/schemes.toml``); the
groups of a torch module are found exactly as the Core AI backend finds them
(``coreai_quant.tensor_group``), so one scheme means the same weights on both
backends. Importing this module needs torch.
"""

from __future__ import annotations


import torch
from torch import nn

from ...config.zoo_data import QuantSpec, Scheme, as_scheme
from ...errors import ConfigError, NotImplementedFeatureError
from ..coreai.quant import expert_weight_names, kmeans_rows, tensor_group
from ..storage import coreml_refusal
from .names import const_name

_MODES = {"symmetric": "linear_symmetric", "affine": "linear"}


def resolve_formats(scheme: Scheme | str) -> Scheme:
    """The scheme object; formats Core ML cannot store are refused."""
    scheme = as_scheme(scheme)
    for group, fmt in scheme.quantize.items():
        _check_format(group, fmt)
    return scheme


def _check_format(group: str, fmt: QuantSpec) -> None:
    refusal = coreml_refusal(group, fmt)
    if refusal:
        raise ConfigError(refusal, "use symmetric/affine 4 or 8 bits, or k-means with 1, 2, 3, 4, 6 or 8 bits")


def quantized_weights(module: nn.Module, scheme: Scheme) -> dict[str, tuple[nn.Module, QuantSpec]]:
    """``parameter path -> (owning module, format)`` for every weight the scheme compresses."""
    chosen = {}
    for name, child in module.named_modules():
        if expert_weight_names(child):
            raise NotImplementedFeatureError(
                f"{name}: the Core ML backend has no path for stacked MoE expert weights",
                "build MoE families with the Core AI backend",
            )
        group = tensor_group(name, child)
        fmt = scheme.quantize.get(group or "")
        weight = getattr(child, "weight", None)
        if fmt is not None and isinstance(weight, torch.Tensor) and weight.dim() == 2:
            chosen[f"{name}.weight"] = (child, fmt)
    return chosen


@torch.no_grad()
def cluster_kmeans_groups(module: nn.Module, scheme: Scheme) -> set[str]:
    """Replace every k-means weight by its per-row clustered value; returns their parameter paths.

    Each row keeps at most ``2**bits`` distinct fp16 values, which Core ML's ``unique``
    palettization then stores losslessly as indices plus one LUT per row.
    """
    clustered = set()
    for path, (owner, fmt) in quantized_weights(module, scheme).items():
        if fmt.method != "kmeans":
            continue
        weight = owner.weight
        lut, codes = kmeans_rows(weight.detach().float(), 2**fmt.bits)
        values = torch.gather(lut.to(torch.float16).float(), 1, codes.long())
        owner.weight = nn.Parameter(values.to(weight.dtype), requires_grad=False)
        clustered.add(path)
    return clustered


def compression_configs(module: nn.Module, scheme: Scheme, clustered: set[str]) -> tuple[dict, dict]:
    """``(linear-quantizer configs, palettizer configs)`` keyed by weight constant name."""
    import coremltools.optimize.coreml as cto

    quantized, palettized = {}, {}
    for path, (_, fmt) in quantized_weights(module, scheme).items():
        name = const_name(path)
        if path in clustered:
            palettized[name] = cto.OpPalettizerConfig(
                mode="unique", granularity="per_grouped_channel", group_size=1, weight_threshold=0
            )
        else:
            granularity = "per_block" if fmt.block_size else "per_channel"
            quantized[name] = cto.OpLinearQuantizerConfig(
                mode=_MODES[fmt.method], dtype=f"int{fmt.bits}", granularity=granularity,
                block_size=fmt.block_size or 32, weight_threshold=0,
            )
    return quantized, palettized
