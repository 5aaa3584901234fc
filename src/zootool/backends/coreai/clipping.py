"""Symmetric block quantization with a clipping search: each block's scale is the one, among
shrunken copies of its max-|w| scale, whose codes reproduce the block with the least squared error.

Min-max scaling (``quant.quantize_symmetric``) spends the whole code range on a block's largest
weight; one outlier then leaves the rest of the block a few codes. Clipping it trades that one
weight's error for finer steps everywhere else. At 4 bits (codes -7..7) this is what matters.
The codes and fp16 scales have exactly ``quantize_symmetric``'s layout, so the Core AI storage op
(``constexpr_blockwise_shift_scale``) and every reader of that layout are unchanged; the error is
measured with the fp16-rounded scale the program stores.

For reference, coreai-opt's ``symmetric_with_clipping`` (Apple's macOS 4-bit preset) is min-max
scaling over the clipped code range -7..7, with no search; ``bench/clip_search_bench.py`` measures
both on real weights.
"""

from __future__ import annotations

import torch

# Candidate scales as fractions of the block's max-|w| scale; 1.0 (no clipping) is always tried.
# 1.0 down to 0.7: on SmolLM2-135M's weights a grid down to 0.5 picked nothing below 0.7 (the same
# error, 0.816x min-max's, at twice the time); steps of 0.05 gave 0.827x.
CLIP_RATIOS = tuple(round(1.0 - 0.025 * step, 3) for step in range(13))
CHUNK_ELEMENTS = 1 << 22  # rows searched at once: fp32 temporaries of ~16 MB each, whatever the tensor


def quantize_symmetric_clipped(weight: torch.Tensor, bits: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and fp16 scales per ``block`` along the last dim,
    each block's scale chosen among ``CLIP_RATIOS`` of its max-|w| scale for the least squared error."""
    if weight.shape[-1] % block:
        raise ValueError(f"last dimension {weight.shape[-1]} is not a multiple of the block size {block}")
    rows = weight.reshape(-1, weight.shape[-1])
    step = max(1, CHUNK_ELEMENTS // weight.shape[-1])
    parts = [_search(rows[start : start + step], bits, block) for start in range(0, rows.shape[0], step)]
    codes = torch.cat([codes for codes, _ in parts]).reshape(weight.shape)
    scales = torch.cat([scale for _, scale in parts]).reshape(*weight.shape[:-1], -1)
    return codes, scales


def _search(rows: torch.Tensor, bits: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    top = 2 ** (bits - 1) - 1
    blocks = rows.float().reshape(rows.shape[0], -1, block)
    full = blocks.abs().amax(-1) / top
    best_scale, best_error = None, None
    for ratio in CLIP_RATIOS:
        scale = (full * ratio).clamp_min(torch.finfo(torch.float16).tiny).half().float()
        error = _block_error(blocks, scale, top)
        if best_error is None:
            best_scale, best_error = scale, error
            continue
        better = error < best_error
        best_scale = torch.where(better, scale, best_scale)
        best_error = torch.where(better, error, best_error)
    codes = torch.round(blocks / best_scale.unsqueeze(-1)).clamp(-top, top)
    return codes.to(torch.int8).reshape(rows.shape), best_scale.half()


def _block_error(blocks: torch.Tensor, scale: torch.Tensor, top: int) -> torch.Tensor:
    """Squared error per block of the codes ``scale`` gives, dequantized with that same scale."""
    step = scale.unsqueeze(-1)
    codes = torch.round(blocks / step).clamp(-top, top)
    return (codes * step - blocks).square().sum(-1)
