"""``gather_qmm``: quantized gathered matmul for routed MoE experts.

Layout ("sym8"): expert weights ``wq`` are int8 ``[E, N, Kp]`` (output rows first,
``Kp`` = K zero-padded to a multiple of 256) with one fp16 scale per (expert, row,
K-block of 32): ``ws`` is ``[E, N, Kp // 32]``. The dequantized weight is
``wq * ws`` (symmetric, no zero point).

Two ways to compute ``y[t, j, :] = W[idx[t, j]] @ x[t]``:

* :func:`gather_qmm`: a custom Metal kernel (:data:`METAL_SOURCE`) that reads the
  routed experts' int8 slabs and scales only. Its torch twin
  :func:`gather_qmm_reference` is what torch runs eagerly and what tests compare.
* :func:`gather_mm_dequant`: the stock composite ``GatherMM`` over the dequantized
  weights (the converter stores them int8; the graph dequantizes every expert).

Importing this module needs torch; the Metal kernel object needs coreai-torch and is
built on first use.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

from .rules import EXPERT_K_MULTIPLE

KERNEL_NAME = "zoo_gather_qmm"
BLOCK = 32  # weights per fp16 scale along K
K_MULTIPLE = EXPERT_K_MULTIPLE  # 32 SIMD lanes x 8 weights per lane per step
N_MULTIPLE = 32
SIMD_WIDTH = 32

# One SIMD group (32 lanes) per output element (routed pair, row). Every operand is
# flattened to rank 1 so the indexing below does not depend on how the runtime maps
# a multi-dimensional array onto Metal tensor extents.
METAL_SOURCE = """
const uint lane = tid.x;
const uint row = tid.y;
const uint pair = tid.z;
const uint token = pair / top_k;
const uint expert = uint(idx[pair]);
const uint blocks = k_pad / 32;
const uint w_base = (expert * n_rows + row) * k_pad;
const uint s_base = (expert * n_rows + row) * blocks;
const uint x_base = token * k_pad;
float acc = 0.0f;
for (uint start = lane * 8; start < k_pad; start += 256) {
    float part = 0.0f;
    for (uint i = 0; i < 8; ++i) {
        part += float(x[x_base + start + i]) * float(wq[w_base + start + i]);
    }
    acc += part * float(ws[s_base + start / 32]);
}
acc = simd_sum(acc);
if (lane == 0) {
    y[pair * n_rows + row] = half(acc);
}
"""


def gather_qmm_reference(
    x: torch.Tensor,
    idx: torch.Tensor,
    wq: torch.Tensor,
    ws: torch.Tensor,
    n_rows: int,
    k_pad: int,
    top_k: int,
) -> torch.Tensor:
    """What the kernel computes, on flat operands: fp32 block sums, one fp16 rounding.

    ``x`` is ``[T * k_pad]`` fp16, ``idx`` ``[T * top_k]`` int32, ``wq``/``ws`` the
    flattened sym8 slabs. Returns ``[T * top_k * n_rows]`` fp16.
    """
    tokens = x.numel() // k_pad
    experts = wq.numel() // (n_rows * k_pad)
    routes = idx.reshape(tokens, top_k).long()
    q = wq.reshape(experts, n_rows, k_pad)[routes].float()
    s = ws.reshape(experts, n_rows, k_pad // BLOCK)[routes].float()
    xs = x.reshape(tokens, 1, 1, k_pad).float()
    block_sums = (q * xs).reshape(tokens, top_k, n_rows, k_pad // BLOCK, BLOCK).sum(-1)
    return (block_sums * s).sum(-1).to(torch.float16).reshape(-1)


@cache
def gather_qmm_kernel() -> Any:
    """The ``TorchMetalKernel`` (built once: it registers a torch custom op)."""
    from coreai_torch import MetalParameter, TorchMetalKernel

    return TorchMetalKernel(
        name=KERNEL_NAME,
        input_names=["x", "idx", "wq", "ws", "n_rows", "k_pad", "top_k"],
        result_names=["y"],
        src=METAL_SOURCE,
        torch_defn=gather_qmm_reference,
        metal_params=[MetalParameter(name="tid", dtype="uint3", attr="thread_position_in_grid")],
    )


def check_layout(wq: torch.Tensor, ws: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``wq``/``ws`` follow the sym8 kernel layout."""
    if wq.dim() != 3 or wq.dtype != torch.int8:
        raise ValueError(f"wq must be int8 [E, N, Kp], got {wq.dtype} {tuple(wq.shape)}")
    experts, rows, k_pad = wq.shape
    if k_pad % K_MULTIPLE or rows % N_MULTIPLE:
        raise ValueError(f"need Kp % {K_MULTIPLE} == 0 and N % {N_MULTIPLE} == 0, got N={rows} Kp={k_pad}")
    if tuple(ws.shape) != (experts, rows, k_pad // BLOCK) or ws.dtype != torch.float16:
        raise ValueError(f"ws must be fp16 [{experts}, {rows}, {k_pad // BLOCK}], got {ws.dtype} {tuple(ws.shape)}")


def pad_k(x: torch.Tensor, k_pad: int) -> torch.Tensor:
    """Zero-pad the last dimension of ``x`` to ``k_pad``."""
    extra = k_pad - x.shape[-1]
    return F.pad(x, (0, extra)) if extra else x


def gather_qmm(x: torch.Tensor, idx: torch.Tensor, wq: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """Routed expert matmul through the Metal kernel: ``[T, K] x [T, k] -> [T, k, N]``.

    In eager torch this runs :func:`gather_qmm_reference`; exported, it becomes one
    ``coreai.metal4_kernel`` op (register :func:`gather_qmm_kernel` with the converter).
    """
    check_layout(wq, ws)
    _, rows, k_pad = wq.shape
    tokens, top_k = idx.shape
    flat = gather_qmm_kernel()(
        pad_k(x, k_pad).reshape(-1),
        idx.to(torch.int32).reshape(-1),
        wq.reshape(-1),
        ws.reshape(-1),
        rows,
        k_pad,
        top_k,
        threads_per_grid=(SIMD_WIDTH, rows, tokens * top_k),
        threads_per_thread_group=(SIMD_WIDTH, 1, 1),
        result_shapes=[[tokens * top_k * rows]],
    )
    return flat.reshape(tokens, top_k, rows)


def dequantize(wq: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """fp16 weights from a sym8 layout via Core AI's storage op (int8 stays int8 on disk)."""
    import coreai_torch._compression.custom_layers  # noqa: F401  (registers coreai:: ops)

    return torch.ops.coreai.constexpr_blockwise_shift_scale(wq, ws)


def gather_mm_dequant(x: torch.Tensor, idx: torch.Tensor, wq: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """Routed expert matmul through the stock ``GatherMM`` composite (reads all experts)."""
    return gather_mm(x, idx, dequantize(wq, ws))


def gather_mm(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``GatherMM`` over fp16 ``weight`` ``[E, N, K']`` (``K' >= K``, zero-padded)."""
    from coreai_torch.composite_ops import GatherMM

    tokens, top_k = idx.shape
    column = pad_k(x, weight.shape[-1]).reshape(tokens, 1, -1, 1)
    out = GatherMM()(weight, column, lhs_indices=idx.to(torch.int32))
    return out.reshape(tokens, top_k, weight.shape[1])
