"""Weight formats the Core AI converter stores natively, applied to a torch module.

Core AI expresses compressed weights as two custom torch ops that the converter
turns into compressed constants (see docs/coreai-notes.md):

* ``coreai::constexpr_blockwise_shift_scale(q, scale, input_dtype=...)``: int8 or
  int4 data with one fp16 scale per block (summary storage ``Int8`` / ``Int4``).
* ``coreai::lut_to_dense(indices, lut, axis)``: palettized weights, ``n``-bit
  indices into fp16 look-up tables (summary storage ``UInt4`` for 16 entries).

This module swaps a model's linears, embeddings and stacked experts for modules that
hold those forms, as a ``zoo_data.Scheme`` (``zoo/schemes.toml``) says per tensor group.
A head tied to the embedding keeps sharing its storage, so the matrix
is stored once (as the size estimate counts it). Importing it needs torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config.zoo_data import QuantSpec, Scheme
from ...kernels import gather_qmm as gq
from ...kernels.rules import gather_qmm_refusal
from ..kmeans import kmeans_rows

ZOO_GROUP_ATTR = "zoo_group"  # a module may name its tensor group explicitly
ATTENTION_LEAVES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj"})
ROUTER_LEAVES = frozenset({"gate", "router"})


class ExpertMatmul(nn.Module):
    """Routed expert matmul: ``(hidden, indices [T, k], weight) -> [T, k, N]``.

    ``hidden`` is ``[T, K]`` (shared by the k routes) or ``[T, k, K]``. ``weight`` is
    an fp16 ``[E, N, K]`` tensor (stock ``GatherMM``) or one of the quantized expert
    modules below, which then does the work.
    """

    def forward(self, hidden: torch.Tensor, indices: torch.Tensor, weight: Any) -> torch.Tensor:
        if isinstance(weight, nn.Module):
            return weight(hidden, indices)
        return routed(gq.gather_mm, hidden, indices, weight)


def routed(fn: Any, hidden: torch.Tensor, indices: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
    """Apply ``fn(x [T, K], idx [T, k], *weights)``; a per-route ``[T, k, K]`` hidden becomes T*k rows."""
    if hidden.dim() == 2:
        return fn(hidden, indices, *weights)
    tokens, top_k = indices.shape
    out = fn(hidden.reshape(tokens * top_k, -1), indices.reshape(tokens * top_k, 1), *weights)
    return out.reshape(tokens, top_k, -1)


class BlockQuantExperts(nn.Module):
    """Expert weight as symmetric int blocks (8-bit: the ``gather_qmm`` layout)."""

    def __init__(self, weight: torch.Tensor, fmt: QuantSpec, use_kernel: bool) -> None:
        super().__init__()
        k_pad = -(-weight.shape[-1] // gq.K_MULTIPLE) * gq.K_MULTIPLE
        q, s = quantize_symmetric(gq.pad_k(weight, k_pad), fmt.bits, fmt.block_size)
        _store(self, "wq", q)
        _store(self, "ws", s)
        self.bits = fmt.bits
        self.use_kernel = use_kernel

    def dense(self) -> torch.Tensor:
        """The fp16 ``[E, N, Kp]`` stack these codes and scales stand for."""
        return dequantize_symmetric(self.wq, self.ws, self.bits)

    def expert_dense(self, expert: int) -> torch.Tensor:
        """One expert's fp16 ``[N, Kp]`` slab of :meth:`dense`."""
        return dequantize_symmetric(self.wq[expert : expert + 1], self.ws[expert : expert + 1], self.bits)[0]

    def forward(self, hidden: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if self.use_kernel:
            return routed(gq.gather_qmm, hidden, indices, self.wq, self.ws)
        return routed(gq.gather_mm, hidden, indices, self.dense())


class PalettizedExperts(nn.Module):
    """Expert weight as ``bits``-bit k-means indices with one fp16 LUT per (expert, row)."""

    def __init__(self, weight: torch.Tensor, fmt: QuantSpec) -> None:
        super().__init__()
        experts, rows, cols = weight.shape
        lut, codes = kmeans_rows(weight.reshape(experts * rows, cols), 2**fmt.bits)
        # The converter finds LUT operands by these buffer names ("indices", "lut").
        _store(self, "indices", codes.reshape(experts, rows, cols))
        _store(self, "lut", lut.half().reshape(experts, rows, 1, 2**fmt.bits, 1))

    def dense(self) -> torch.Tensor:
        """The fp16 ``[E, N, K]`` stack these indices and tables stand for."""
        return coreai_ops().lut_to_dense(self.indices, self.lut, 0)

    def expert_dense(self, expert: int) -> torch.Tensor:
        """One expert's fp16 ``[N, K]`` slab of :meth:`dense`."""
        return coreai_ops().lut_to_dense(self.indices[expert : expert + 1], self.lut[expert : expert + 1], 0)[0]

    def forward(self, hidden: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return routed(gq.gather_mm, hidden, indices, self.dense())


class BlockQuantLinear(nn.Module):
    """``nn.Linear`` with symmetric int8/int4 block-quantized weight storage."""

    def __init__(self, linear: nn.Linear, fmt: QuantSpec) -> None:
        super().__init__()
        q, s = quantize_blocks(linear.weight.detach(), fmt)
        _store(self, "wq", q)
        _store(self, "ws", s)
        self.bits = fmt.bits
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_symmetric(self.wq, self.ws, self.bits), self.bias)


class BlockQuantEmbedding(nn.Module):
    """``nn.Embedding`` whose table is stored as symmetric int8/int4 blocks along the hidden dim.

    The rows are gathered from the dequantized table, so a head tied to it
    (:class:`TiedBlockQuantHead`) multiplies by the very same stored constant.
    """

    def __init__(self, embedding: nn.Embedding, fmt: QuantSpec) -> None:
        super().__init__()
        q, s = quantize_blocks(embedding.weight.detach(), fmt)
        _store(self, "wq", q)
        _store(self, "ws", s)
        self.bits = fmt.bits

    def dense(self) -> torch.Tensor:
        return dequantize_symmetric(self.wq, self.ws, self.bits)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.dense())


class TiedBlockQuantHead(nn.Module):
    """An output projection tied to a :class:`BlockQuantEmbedding`: no storage of its own."""

    def __init__(self, embedding: BlockQuantEmbedding) -> None:
        super().__init__()
        # A plain attribute, not a submodule: the table belongs to the embedding alone.
        self.__dict__["embedding"] = embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.embedding.dense())


def _store(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Register ``tensor`` as a buffer that owns its bytes (see :func:`unviewed`)."""
    module.register_buffer(name, unviewed(tensor))


def unviewed(tensor: torch.Tensor) -> torch.Tensor:
    """The same bytes as a tensor that is no view: ``tensor`` itself where it is none.

    A view (``codes.reshape(...)``) keeps its base tensor alive from C++, out of reach: a
    consuming export empties the module's buffer, yet the base still holds every byte until
    the export ends. For the flagship's int4km experts that was ~7.8 GB of codes alive beside
    their converted constants (the iphone build's peak).
    """
    if tensor._base is None:
        return tensor
    owner = torch.empty(0, dtype=tensor.dtype)
    return owner.set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.shape, tensor.stride())


def quantize_symmetric(weight: torch.Tensor, bits: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and fp16 scales per ``block`` along the last dim."""
    if weight.shape[-1] % block:
        raise ValueError(f"last dimension {weight.shape[-1]} is not a multiple of the block size {block}")
    if weight.dim() > 2:  # one expert at a time: fp32 temporaries of one slab, not of the stack
        parts = [quantize_symmetric(slab, bits, block) for slab in weight]
        return torch.stack([codes for codes, _ in parts]), torch.stack([scale for _, scale in parts])
    top = 2 ** (bits - 1) - 1
    blocks = weight.float().reshape(*weight.shape[:-1], -1, block)
    scale = (blocks.abs().amax(-1) / top).clamp_min(torch.finfo(torch.float16).tiny).half()
    codes = torch.round(blocks / scale.float().unsqueeze(-1)).clamp(-top, top)
    return codes.to(torch.int8).reshape(weight.shape), scale


def quantize_blocks(weight: torch.Tensor, fmt: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and fp16 block scales as ``fmt`` says: min-max, or with a clipping search (``clip-search``)."""
    if fmt.clip_search:
        from .clipping import quantize_symmetric_clipped

        return quantize_symmetric_clipped(weight, fmt.bits, fmt.block_size)
    return quantize_symmetric(weight, fmt.bits, fmt.block_size)


def dequantize_symmetric(q: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """fp16 weight through ``coreai::constexpr_blockwise_shift_scale`` (stored as int``bits``)."""
    dtype = torch.int4 if bits == 4 else None
    return coreai_ops().constexpr_blockwise_shift_scale(q, scale, input_dtype=dtype)


def coreai_ops() -> Any:
    """``torch.ops.coreai``, after importing the module that registers its storage ops."""
    import coreai_torch._compression.custom_layers  # noqa: F401

    return torch.ops.coreai


def tensor_group(name: str, module: nn.Module) -> str | None:
    """The tensor group a module's weight belongs to (``None``: not a weight holder)."""
    explicit = getattr(module, ZOO_GROUP_ATTR, None)
    if explicit:
        return explicit
    if expert_weight_names(module):
        return "experts"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.Conv1d):
        return "conv"
    if not isinstance(module, nn.Linear):
        return None
    leaf, parts = name.rsplit(".", 1)[-1], name.split(".")
    if leaf == "lm_head":
        return "lm-head"
    if leaf in ROUTER_LEAVES:
        return "router"
    if leaf in ATTENTION_LEAVES or "self_attn" in parts or "attention" in parts:
        return "attention"
    return "linear"


def expert_weight_names(module: nn.Module) -> list[str]:
    """Stacked ``[E, N, K]`` parameters of an experts host (a module with a ``matmul`` child).

    The host calls ``self.matmul(hidden, indices, self.<weight>)``; quantizing swaps
    each weight for a module and ``matmul`` for :class:`ExpertMatmul`.
    """
    if not isinstance(getattr(module, "matmul", None), nn.Module):
        return []
    return [name for name, p in module.named_parameters(recurse=False) if p.dim() == 3]


def quantize_module(
    module: nn.Module, scheme: Scheme, *, use_kernel: bool, within: tuple[str, ...] | None = None,
) -> nn.Module:
    """Swap, in place, the weights of every group ``scheme`` quantizes (``ValueError`` if impossible).

    A linear whose weight *is* a quantized embedding's table (a tied head) reads that
    table instead of storing a second copy, whatever the scheme says of ``lm-head``: the
    estimate counts a tied head as part of the embedding. ``within`` limits it to some
    submodules (``("layers.3",)``) and what they hold. Quantized modules are left alone,
    so quantizing twice changes nothing.
    """
    children = [c for c in _children(module) if within is None or _inside(c[0], within)]
    embeddings = _quantize_embeddings(children, scheme)
    for name, parent, child_name, child in children:
        if isinstance(child, nn.Linear) and id(child.weight) in embeddings:
            setattr(parent, child_name, TiedBlockQuantHead(embeddings[id(child.weight)]))
            continue
        group = tensor_group(name, child)
        fmt = scheme.quantize.get(group or "")
        if fmt is None or group == "embedding":
            continue
        if group == "experts":
            _quantize_experts(name, child, scheme, use_kernel)
        elif isinstance(child, nn.Linear):
            _check_symmetric(fmt)
            setattr(parent, child_name, BlockQuantLinear(child, fmt))
        else:
            raise ValueError(f"{name}: cannot quantize a {type(child).__name__} (group {group!r})")
    return module


def _quantize_embeddings(children: list, scheme: Scheme) -> dict[int, BlockQuantEmbedding]:
    """Swap the embeddings the scheme quantizes; ``id(original weight) -> replacement``."""
    fmt = scheme.quantize.get("embedding")
    done: dict[int, BlockQuantEmbedding] = {}
    for name, parent, child_name, child in children:
        if fmt is None or tensor_group(name, child) != "embedding":
            continue
        if not isinstance(child, nn.Embedding):
            raise ValueError(f"{name}: cannot quantize a {type(child).__name__} as an embedding")
        _check_symmetric(fmt)
        done[id(child.weight)] = BlockQuantEmbedding(child, fmt)
        setattr(parent, child_name, done[id(child.weight)])
    return done


def _inside(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _children(module: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Module]]:
    for parent_name, parent in module.named_modules():
        for child_name, child in parent.named_children():
            yield f"{parent_name}.{child_name}".lstrip("."), parent, child_name, child


def _quantize_experts(name: str, host: nn.Module, scheme: Scheme, use_kernel: bool) -> None:
    refusal = gather_qmm_refusal(scheme) if use_kernel else None
    if refusal:
        raise ValueError(refusal)
    fmt = scheme.quantize["experts"]
    weights = expert_weight_names(host)
    if not weights:
        raise ValueError(f"{name}: group 'experts' needs [E, N, K] parameters and a `matmul` child")
    for weight_name in weights:
        weight = getattr(host, weight_name).detach()
        delattr(host, weight_name)
        setattr(host, weight_name, _expert_module(weight, fmt, use_kernel))
    host.matmul = ExpertMatmul()


def _expert_module(weight: torch.Tensor, fmt: QuantSpec, use_kernel: bool) -> nn.Module:
    if fmt.method == "kmeans":
        return PalettizedExperts(weight, fmt)
    if fmt.clip_search:
        raise ValueError("clip-search is not implemented for stacked expert weights (no kernel takes such a scheme)")
    _check_symmetric(fmt)
    return BlockQuantExperts(weight, fmt, use_kernel)


def _check_symmetric(fmt: QuantSpec) -> None:
    if fmt.method != "symmetric" or fmt.bits not in (4, 8):
        raise ValueError(f"unsupported weight format {fmt.method} {fmt.bits}-bit (have: symmetric 4/8, kmeans)")
