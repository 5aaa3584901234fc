"""Where each graph tensor comes from in a family's checkpoint: the weight-name map, torch-free.

The decode graph names its tensors canonically (``layers.3.self_attn.o_proj.weight``,
``layers.3.moe.experts.gate_up_proj``); a checkpoint names them as its transformers
class does (``model.layers.3.self_attn.out_proj.weight``, one matrix per expert). A
family states the differences once, as :class:`WeightNames`; the loader reads through
:func:`sources`, and the synthetic generator writes :func:`checkpoint_tensors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .base import TensorSpec


@dataclass(frozen=True)
class Direct:
    """The checkpoint tensor ``name``, as is."""

    name: str


@dataclass(frozen=True)
class Rows:
    """Rows ``start:stop`` of a fused checkpoint tensor (Phi-3's ``qkv_proj``)."""

    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class Stacked:
    """A stacked ``[E, N, K]`` expert tensor: ``stacked`` if the checkpoint has it, else for each
    expert the row-wise concatenation of ``per_expert[e]`` (``w1`` over ``w3``)."""

    stacked: str
    per_expert: tuple[tuple[str, ...], ...]


Source = Direct | Rows | Stacked


@dataclass(frozen=True)
class WeightNames:
    """How a family's checkpoint names the canonical graph tensors.

    ``layer`` maps canonical paths inside a layer to the checkpoint's (the longest matching
    prefix wins: ``{"self_attn.o_proj": "self_attn.out_proj"}``); ``top`` does the same for
    the modules outside the layers. ``experts`` names the parts each stacked expert tensor is
    stored as, per expert (``{"gate_up_proj": ("gate_proj", "up_proj")}``); ``fused`` lists
    checkpoint tensors that hold several canonical ones, rows in order.
    """

    layer: Mapping[str, str] = field(default_factory=dict)
    top: Mapping[str, str] = field(default_factory=dict)
    prefix: str = "model."
    experts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    expert_path: str = "experts.{expert}.{part}.weight"
    fused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def rename(self, canonical: str) -> str:
        """The checkpoint name of a canonical tensor stored as one tensor."""
        if canonical == "lm_head.weight":
            return canonical
        parts = canonical.split(".")
        if parts[0] == "layers":
            head, rest = ".".join(parts[:2]), ".".join(parts[2:])
            return f"{self.prefix}{head}.{_substitute(rest, self.layer)}"
        return self.prefix + _substitute(canonical, self.top)


def _substitute(path: str, table: Mapping[str, str]) -> str:
    matches = [key for key in table if path == key or path.startswith(key + ".")]
    if not matches:
        return path
    key = max(matches, key=len)
    return table[key] + path[len(key):]


def sources(tensors: list[TensorSpec], names: WeightNames, tied: bool) -> dict[str, Source]:
    """Canonical graph name -> where to read it, for every tensor of a layout."""
    shapes = {spec.name: spec.shape for spec in tensors}
    found: dict[str, Source] = {}
    for spec in tensors:
        found[spec.name] = _source(spec, names)
    for fused, members in names.fused.items():
        _fuse(found, shapes, names, fused, members)
    if tied:
        found["lm_head.weight"] = Direct(names.rename("embed_tokens.weight"))
    return found


def _source(spec: TensorSpec, names: WeightNames) -> Source:
    if spec.group != "experts":
        return Direct(names.rename(spec.name))
    host, kind = spec.name.rsplit(".", 1)
    parts = names.experts.get(kind, (kind,))
    stored_host = names.rename(host)
    moe = stored_host.rsplit(".", 1)[0]  # the experts' parent module
    per_expert = tuple(
        tuple(f"{moe}.{names.expert_path.format(expert=e, part=part)}" for part in parts)
        for e in range(spec.shape[0])
    )
    return Stacked(f"{stored_host}.{kind}", per_expert)


def _fuse(found: dict[str, Source], shapes: dict, names: WeightNames, fused: str, members: tuple[str, ...]) -> None:
    """Point each ``members`` tensor (a canonical path in a layer) at its rows of ``fused``."""
    layers = {name.split(".")[1] for name in found if name.startswith("layers.")}
    for index in layers:
        start = 0
        for member in members:
            canonical = f"layers.{index}.{member}"
            if canonical not in shapes:
                continue
            rows = shapes[canonical][0]
            found[canonical] = Rows(f"{names.prefix}layers.{index}.{fused}", start, start + rows)
            start += rows


def checkpoint_tensors(tensors: list[TensorSpec], names: WeightNames, tied: bool) -> list[TensorSpec]:
    """The tensors as the family's checkpoints store them: renamed, experts one by one, fused rows joined."""
    found = sources(tensors, names, tied)
    stored: dict[str, TensorSpec] = {}
    for spec in tensors:
        if tied and spec.name == "lm_head.weight":
            continue
        for name, shape in _stored(spec, found[spec.name]):
            stored[name] = TensorSpec(name, spec.group, shape, spec.parameter)
    return list(stored.values())


def _stored(spec: TensorSpec, source: Source) -> list[tuple[str, tuple[int, ...]]]:
    """(checkpoint name, shape) of what holds ``spec``; a fused tensor as far as its rows reach."""
    if isinstance(source, Stacked):
        _, rows, cols = spec.shape
        parts = len(source.per_expert[0])
        return [(name, (rows // parts, cols)) for expert in source.per_expert for name in expert]
    if isinstance(source, Rows):
        return [(source.name, (source.stop, *spec.shape[1:]))]
    return [(source.name, spec.shape)]
