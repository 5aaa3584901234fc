"""k-means (int4km) time and error on one flagship-size expert layer: the previous algorithm vs now.

Figures, not assertions: `python bench/kmeans_bench.py [--experts 32] [--skip-old]`.
One LFM2.5-8B-A1B MoE layer holds 32 experts' gate_up_proj [3584, 2048] and down_proj
[2048, 1792]; the weights here are seeded random bf16 values (std 0.02), like the Hub's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the previous algorithm lives there as the reference

from kmeans_reference import reference_kmeans_rows  # noqa: E402

from zootool.backends.kmeans import kmeans_rows  # noqa: E402

FLAGSHIP = {"gate_up_proj": (3584, 2048), "down_proj": (2048, 1792)}
MOE_LAYERS = 22


def layer(experts: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: (torch.randn(experts * rows, cols, generator=generator) * 0.02).to(torch.bfloat16).float()
        for name, (rows, cols) in FLAGSHIP.items()
    }


def timed(kmeans, weights: dict[str, torch.Tensor], levels: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of every thread, mean squared error over every weight of the layer)."""
    wall, cpu = time.perf_counter(), time.process_time()
    codebooks = {name: kmeans(weight, levels) for name, weight in weights.items()}
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    squared = sum(
        float((lut.gather(1, codes.long()) - weights[name]).pow(2).sum(dtype=torch.float64))
        for name, (lut, codes) in codebooks.items()
    )
    return wall, cpu, squared / sum(weight.numel() for weight in weights.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-old", action="store_true", help="time only the current algorithm")
    args = parser.parse_args()
    weights = layer(args.experts, args.seed)
    print(f"one expert layer: {args.experts} experts, {sum(w.numel() for w in weights.values()) / 1e6:.0f}M weights,"
          f" {args.levels} levels, torch threads {torch.get_num_threads()}")
    runs = [("new", kmeans_rows)] + ([] if args.skip_old else [("old", reference_kmeans_rows)])
    for name, kmeans in runs:
        wall, cpu, mse = timed(kmeans, weights, args.levels)
        scale = 32 / args.experts * MOE_LAYERS / 60
        print(f"{name}: {wall:7.1f} s per layer ({wall * scale:5.1f} min for {MOE_LAYERS} layers of 32 experts),"
              f" {cpu:7.1f} CPU s, mean squared error {mse:.4e}")


if __name__ == "__main__":
    main()
