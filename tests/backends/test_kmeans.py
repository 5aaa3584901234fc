"""The sorted-row k-means against the previous algorithm: never a worse fit, the same outputs."""

from __future__ import annotations

import pytest
import torch
from kmeans_reference import reference_kmeans_rows

from zootool.backends.coreai.quant import kmeans_rows
from zootool.backends.kmeans import density_centers


def _error(lut: torch.Tensor, codes: torch.Tensor, rows: torch.Tensor) -> float:
    return float((lut.gather(1, codes.long()) - rows.float()).pow(2).mean())


def _sample(kind: str, rows: int = 512, cols: int = 2048) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    if kind == "gaussian":
        values = torch.randn(rows, cols, generator=generator) * 0.02
    else:  # heavy-tailed, with outliers as trained weights have
        values = torch.randn(rows, cols, generator=generator) * 0.01
        values = values / torch.rand(rows, cols, generator=generator).clamp_min(0.05).sqrt()
    return values.to(torch.bfloat16)


@pytest.mark.parametrize("kind", ["gaussian", "heavy-tailed"])
@pytest.mark.parametrize("levels", [16, 4])
def test_error_is_no_worse_than_the_previous_kmeans(kind, levels):
    rows = _sample(kind)
    old = _error(*reference_kmeans_rows(rows, levels), rows)
    new = _error(*kmeans_rows(rows, levels), rows)
    assert new <= old * 1.001, (new, old)


def test_outputs_have_the_previous_shapes_and_dtypes():
    rows = _sample("gaussian", 300, 1792)
    (old_lut, old_codes), (lut, codes) = reference_kmeans_rows(rows, 16), kmeans_rows(rows, 16, chunk=128)
    assert lut.shape == old_lut.shape == (300, 16) and lut.dtype == old_lut.dtype == torch.float32
    assert codes.shape == old_codes.shape == (300, 1792) and codes.dtype == old_codes.dtype == torch.uint8
    assert int(codes.max()) < 16 and torch.equal(lut, lut.sort(dim=1).values)


def test_result_is_a_lloyd_fixed_point():
    """Every center is the mean of the weights coded to it, and every weight is coded to its nearest center."""
    rows = _sample("heavy-tailed", 64)
    lut, codes = kmeans_rows(rows, 16)
    values = rows.float()
    counts = torch.zeros_like(lut).scatter_add_(1, codes.long(), torch.ones_like(values))
    sums = torch.zeros(lut.shape, dtype=torch.float64).scatter_add_(1, codes.long(), values.double())
    used = counts > 0
    torch.testing.assert_close(lut[used].double(), (sums / counts.clamp_min(1))[used], rtol=1e-5, atol=1e-9)
    distance = (values.unsqueeze(-1) - lut.unsqueeze(1)).abs()
    assert torch.equal(distance.gather(2, codes.long().unsqueeze(-1)).squeeze(-1), distance.min(-1).values)


def test_chunking_does_not_change_the_result():
    rows = _sample("gaussian", 100, 256)
    whole, pieces = kmeans_rows(rows, 16), kmeans_rows(rows, 16, chunk=7)
    assert torch.equal(whole[0], pieces[0]) and torch.equal(whole[1], pieces[1])


def test_rows_with_fewer_distinct_values_than_levels_are_exact():
    rows = torch.tensor([[0.5, -1.0, 0.5, 2.0, -1.0, 3.0], [1.0] * 6])
    lut, codes = kmeans_rows(rows, 16)
    assert torch.equal(lut.gather(1, codes.long()), rows)


def test_starting_centers_spread_into_the_tails():
    ordered = _sample("gaussian", 32).float().sort(dim=1).values
    start = density_centers(ordered, 16)
    quantiles = torch.quantile(ordered, torch.tensor([0.5 / 16, 1 - 0.5 / 16]), dim=1)
    assert (start[:, 0] < quantiles[0]).all() and (start[:, -1] > quantiles[1]).all()
    assert torch.equal(start, start.sort(dim=1).values)


@pytest.mark.parametrize("levels", [1, 257])
def test_levels_outside_uint8_codes_are_refused(levels):
    with pytest.raises(ValueError, match="levels"):
        kmeans_rows(torch.randn(2, 8), levels)
