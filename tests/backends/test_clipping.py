"""The clipping search of symmetric block quantization (int4-all): never worse than min-max, the same layout."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zootool.backends.coreai.clipping import CLIP_RATIOS, quantize_symmetric_clipped  # noqa: E402
from zootool.backends.coreai.quant import quantize_symmetric  # noqa: E402


def block_errors(weight: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, block: int = 32) -> torch.Tensor:
    restored = codes.float().reshape(*codes.shape[:-1], -1, block) * scales.float().unsqueeze(-1)
    return (restored - weight.float().reshape(restored.shape)).square().sum(-1)


def test_the_search_is_never_worse_than_min_max_and_better_on_a_bell_curve():
    torch.manual_seed(0)
    weight = torch.randn(96, 256) * 0.02
    searched = quantize_symmetric_clipped(weight, 4, 32)
    minmax = quantize_symmetric(weight, 4, 32)
    assert searched[0].dtype == torch.int8 and searched[1].dtype == torch.float16
    assert searched[0].shape == weight.shape and searched[1].shape == (96, 8)
    assert int(searched[0].abs().max()) <= 7
    ours, theirs = block_errors(weight, *searched), block_errors(weight, *minmax)
    assert bool((ours <= theirs * (1 + 1e-6)).all())  # ratio 1.0 is a candidate: min-max itself
    # 4-bit blocks of 32 normal weights: 0.88x min-max's squared error when measured (0.91x Laplace).
    assert float(ours.sum()) < 0.92 * float(theirs.sum())
    assert float(searched[1].float().min()) > 0 and CLIP_RATIOS[0] == 1.0


def test_chunks_and_stacked_tensors_give_the_same_codes(monkeypatch):
    import zootool.backends.coreai.clipping as clipping

    torch.manual_seed(1)
    weight = torch.randn(3, 40, 64)
    whole = quantize_symmetric_clipped(weight, 4, 32)
    monkeypatch.setattr(clipping, "CHUNK_ELEMENTS", 64 * 7)  # 7 rows a chunk: chunks cross the stack's slabs
    chunked = quantize_symmetric_clipped(weight, 4, 32)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    assert whole[1].shape == (3, 40, 2)
    with pytest.raises(ValueError, match="not a multiple of the block size"):
        quantize_symmetric_clipped(torch.zeros(2, 40), 4, 32)


def test_a_scheme_asks_for_the_search_per_tensor_group():
    from zootool.backends.coreai.quant import BlockQuantLinear
    from zootool.config.zoo_data import QuantSpec

    torch.manual_seed(2)
    linear = torch.nn.Linear(64, 16, bias=False)
    linear.weight.data[0, 5] = 3.0
    plain = BlockQuantLinear(linear, QuantSpec(method="symmetric", bits=4, block_size=32))
    searched = BlockQuantLinear(linear, QuantSpec(method="symmetric", bits=4, block_size=32, clip_search=True))
    assert torch.equal(searched.wq, quantize_symmetric_clipped(linear.weight.detach(), 4, 32)[0])
    assert not torch.equal(plain.ws, searched.ws)
    with pytest.raises(ValueError, match="clipping search needs symmetric weights in blocks"):
        QuantSpec(method="symmetric", bits=4, clip_search=True)
