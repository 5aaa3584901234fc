"""int4 block-32 weights with and without the clipping search, on a checkpoint's own matrices.

Figures, not assertions; run by hand: ``python bench/clip_search_bench.py CHECKPOINT_DIR [--bits 4]``.
For each group of 2-D weights (attention, MLP, embedding) it prints the squared reconstruction
error of min-max scaling (``quantize_symmetric``, codes -7..7 as coreai-opt's
``symmetric_with_clipping``) and of the clipping search (``clipping.quantize_symmetric_clipped``),
relative to the weights' own energy, and the seconds each took.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
from safetensors import safe_open

from zootool.backends.coreai.clipping import quantize_symmetric_clipped
from zootool.backends.coreai.quant import quantize_symmetric

BLOCK = 32


def group(name: str) -> str:
    if "embed" in name or "lm_head" in name:
        return "embedding"
    return "attention" if "self_attn" in name else "mlp"


def squared_error(weight: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> float:
    restored = codes.float().reshape(*codes.shape[:-1], -1, BLOCK) * scales.float().unsqueeze(-1)
    return float((restored.reshape(weight.shape) - weight).square().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args()
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    for shard in sorted(args.checkpoint.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as handle:
            for name in handle.keys():
                weight = handle.get_tensor(name).float()
                if weight.dim() != 2 or weight.shape[-1] % BLOCK:
                    continue
                row = totals[group(name)]
                row[0] += float(weight.square().sum())
                for slot, quantize in ((1, quantize_symmetric), (3, quantize_symmetric_clipped)):
                    start = time.perf_counter()
                    row[slot] += squared_error(weight, *quantize(weight, args.bits, BLOCK))
                    row[slot + 1] += time.perf_counter() - start
    print(f"int{args.bits}, blocks of {BLOCK}: squared error / weight energy (seconds)")
    for name, (energy, minmax, t_minmax, searched, t_searched) in sorted(totals.items()):
        print(f"{name:<10} min-max {minmax / energy:.5f} ({t_minmax:.1f} s)   clip search {searched / energy:.5f} "
              f"({t_searched:.1f} s)   ratio {searched / minmax:.3f}")


if __name__ == "__main__":
    main()
