"""The k-means zootool used before the sorted-row version: quantile start, 16 plain Lloyd steps.

Kept as the reference the faster one is measured against (tests/backends/test_kmeans.py, bench/kmeans_bench.py).
"""

from __future__ import annotations

import torch

STEPS = 16


def reference_kmeans_rows(rows: torch.Tensor, levels: int, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means per row: ``(lut [R, levels] fp32, codes [R, K] uint8)``."""
    luts, codes = [], []
    for part in rows.float().split(chunk):
        lut, code = _chunk(part, levels)
        luts.append(lut)
        codes.append(code)
    return torch.cat(luts), torch.cat(codes)


def _chunk(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    quantiles = torch.linspace(0.5 / levels, 1 - 0.5 / levels, levels)
    centers = torch.quantile(x, quantiles, dim=1).T.contiguous()
    for _ in range(STEPS):
        code = _nearest(x, centers)
        sums = torch.zeros_like(centers).scatter_add_(1, code, x)
        counts = torch.zeros_like(centers).scatter_add_(1, code, torch.ones_like(x))
        centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers).sort(dim=1).values
    return centers, _nearest(x, centers).to(torch.uint8)


def _nearest(x: torch.Tensor, sorted_centers: torch.Tensor) -> torch.Tensor:
    edges = (sorted_centers[:, 1:] + sorted_centers[:, :-1]) / 2
    return torch.searchsorted(edges.contiguous(), x.contiguous())
