"""Per-row 1-D k-means (Lloyd's algorithm) for look-up-table weights, on sorted rows.

On a sorted row every cluster is a contiguous run, so one Lloyd step needs only where the
runs end (a binary search for each midpoint between centers) and two prefix-sum look-ups
per cluster: O(levels * log K) per row instead of O(K). That makes running to convergence
cheap; the codes are assigned once, at the end. Centers start where high-resolution
quantization theory puts optimal ones, at a density proportional to the cube root of the
data's (read off a per-row histogram): from there Lloyd needs a quarter of the steps it
needs from plain quantiles, and settles at a lower error. Chunks of rows run on every core.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from ..build.parallel import in_order, worker_count

# Rows stop as soon as no cluster boundary moves; the cap only bounds pathological rows
# (random bf16-like rows of 2048 all settle within about 60 steps).
MAX_STEPS = 256
HISTOGRAM_BINS = 64


def kmeans_rows(rows: torch.Tensor, levels: int, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means per row: ``(lut [R, levels] fp32, codes [R, K] uint8)``; the LUT rows are sorted."""
    if not 1 < levels <= 256:
        raise ValueError(f"k-means needs 2..256 levels for uint8 codes, got {levels}")
    workers = worker_count()
    tasks = (partial(_kmeans_chunk, part, levels) for part in rows.split(chunk))
    luts, codes = zip(*in_order(tasks, workers, ahead=2 * workers))
    return torch.cat(luts), torch.cat(codes)


def _kmeans_chunk(part: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = part.detach().float().contiguous()
    # numpy's vectorised sort is several times faster than torch's on CPU rows.
    order = torch.from_numpy(np.argsort(x.numpy(), axis=1))
    ordered = x.gather(1, order)
    prefix = torch.zeros(ordered.shape[0], ordered.shape[1] + 1, dtype=torch.float64)
    torch.cumsum(ordered, dim=1, dtype=torch.float64, out=prefix[:, 1:])
    centers = _converge(ordered, prefix, density_centers(ordered, levels))
    return centers, _codes(ordered, order, centers)


def _codes(ordered: torch.Tensor, order: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Each weight's cluster: counted up along the sorted row, then put back in the row's order."""
    rows, length = ordered.shape
    ends = torch.searchsorted(ordered, _midpoints(centers), right=True)
    steps = torch.zeros(rows, length + 1, dtype=torch.uint8)
    steps.scatter_add_(1, ends, torch.ones_like(ends, dtype=torch.uint8))
    along_sorted = steps[:, :length].cumsum(dim=1, dtype=torch.uint8)
    return torch.empty_like(along_sorted).scatter_(1, order, along_sorted)


def density_centers(ordered: torch.Tensor, levels: int) -> torch.Tensor:
    """Sorted starting centers per row: quantiles of the cube root of the row's histogram density.

    For many levels the optimal centers of a density p lie at a density proportional to
    p^(1/3) (Panter and Dite), so they spread further into the tails than p's own quantiles.
    """
    rows = ordered.shape[0]
    low, high = ordered[:, :1], ordered[:, -1:]
    edges = (low + (high - low) * torch.linspace(0, 1, HISTOGRAM_BINS + 1)).contiguous()
    at_or_below = torch.searchsorted(ordered, edges, right=True).double()
    counts = at_or_below.diff(dim=1)
    counts[:, 0] += at_or_below[:, 0]  # the row minimum sits on the first edge
    mass = torch.zeros(rows, HISTOGRAM_BINS + 1, dtype=torch.float64)
    torch.cumsum(counts.pow(1 / 3), dim=1, out=mass[:, 1:])
    mass /= mass[:, -1:].clamp_min(1e-300)
    wanted = torch.linspace(0.5 / levels, 1 - 0.5 / levels, levels, dtype=torch.float64).expand(rows, -1)
    upper = torch.searchsorted(mass, wanted.contiguous()).clamp(1, HISTOGRAM_BINS)
    below, above = mass.gather(1, upper - 1), mass.gather(1, upper)
    fraction = ((wanted - below) / (above - below).clamp_min(1e-300)).float()
    start = edges.gather(1, upper - 1)
    return (start + (edges.gather(1, upper) - start) * fraction).sort(dim=1).values


def _converge(ordered: torch.Tensor, prefix: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Lloyd steps until no row's boundaries move; settled rows leave the working set in halves."""
    result = centers.clone()
    rows = torch.arange(ordered.shape[0])
    previous = None
    for _ in range(MAX_STEPS):
        bounds = _boundaries(ordered, centers)
        if previous is not None:
            moving = (bounds != previous).any(dim=1)
            if not moving.any():
                break
            # Compacting copies the rows, so do it only once half of them have settled.
            if 2 * int(moving.sum()) <= len(moving):
                result[rows[~moving]] = centers[~moving]
                keep = moving.nonzero().squeeze(1)
                rows, ordered, prefix, centers, bounds = (t[keep] for t in (rows, ordered, prefix, centers, bounds))
        previous = bounds
        centers = _means(prefix, bounds, centers)
    result[rows] = centers
    return result


def _boundaries(ordered: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``[R, levels + 1]`` run ends: cluster j holds sorted positions ``bounds[j]:bounds[j + 1]``.

    A value exactly on a midpoint goes to the lower cluster, as ``searchsorted`` codes do.
    """
    inner = torch.searchsorted(ordered, _midpoints(centers), right=True)
    first = torch.zeros_like(inner[:, :1])
    return torch.cat([first, inner, torch.full_like(first, ordered.shape[1])], dim=1)


def _means(prefix: torch.Tensor, bounds: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    counts = bounds[:, 1:] - bounds[:, :-1]
    sums = prefix.gather(1, bounds[:, 1:]) - prefix.gather(1, bounds[:, :-1])
    means = (sums / counts.clamp_min(1)).float()
    # An empty cluster keeps its old center rather than collapsing to zero.
    return torch.where(counts > 0, means, centers).sort(dim=1).values


def _midpoints(sorted_centers: torch.Tensor) -> torch.Tensor:
    return ((sorted_centers[:, 1:] + sorted_centers[:, :-1]) / 2).contiguous()
