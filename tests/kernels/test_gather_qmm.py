"""gather_qmm: torch reference vs the stock GatherMM composite, and the Metal kernel's
conversion and (lack of) execution on this platform.

Bit-exactness is meaningful only when both sides compute the same real number and
round it once. The data make that so: activations are ternary {-1, 0, 1}, codes
span the full int8 range and scales are powers of two, so every product and every
partial sum is a dyadic rational that fp32 holds exactly (<= 22 significant bits).
The reference (fp32 block sums, one fp16 rounding) and torch's fp16 matmul (fp32
accumulation) then agree bit for bit, whatever their summation order; any error
in expert routing, block-to-scale mapping, padding or layout shows up as a
mismatch. The Core AI CPU runtime accumulates fp16 matmuls in fp16, so its test
uses data whose partial sums are integers of magnitude <= 2048 (exact in fp16).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from zootool.backends.coreai import export as backend  # noqa: E402
from zootool.backends.coreai.runtime import KernelNotExecutableError  # noqa: E402
from zootool.kernels import gather_qmm as gq  # noqa: E402


def sym8_case(seed: int, experts: int, rows: int, cols: int, tokens: int, top_k: int, small: bool = False):
    """Random sym8 operands (see module docstring for why these values)."""
    gen = torch.Generator().manual_seed(seed)
    k_pad = -(-cols // gq.K_MULTIPLE) * gq.K_MULTIPLE
    code_max = 2 if small else 127
    wq = torch.randint(-code_max, code_max + 1, (experts, rows, k_pad), generator=gen, dtype=torch.int8)
    wq[..., cols:] = 0
    low, high = (0, 3) if small else (-10, -3)
    ws = (2.0 ** torch.randint(low, high, (experts, rows, k_pad // gq.BLOCK), generator=gen)).half()
    x = torch.randint(-1, 2, (tokens, cols), generator=gen).half()
    idx = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)]).int()
    return x, idx, wq, ws


CASES = [  # seed, experts, rows (N), cols (K), tokens, top_k
    (0, 4, 32, 256, 1, 2),
    (1, 8, 64, 512, 3, 4),
    (2, 6, 96, 200, 2, 3),  # K padded 200 -> 256
    (3, 32, 32, 768, 1, 4),
    (4, 5, 128, 300, 4, 1),  # K padded 300 -> 512
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}-E{c[1]}-N{c[2]}-K{c[3]}")
def test_reference_equals_composite_bit_exact(case):
    x, idx, wq, ws = sym8_case(*case)
    kernel_path = gq.gather_qmm(x, idx, wq, ws)  # eager: runs gather_qmm_reference
    composite = gq.gather_mm_dequant(x, idx, wq, ws)
    assert kernel_path.shape == (case[4], case[5], case[2])
    assert kernel_path.abs().max() > 1  # not a trivially zero comparison
    assert torch.equal(kernel_path, composite)


def test_comparison_detects_a_wrong_scale_block():
    x, idx, wq, ws = sym8_case(*CASES[1])
    shifted = ws.roll(1, dims=-1)  # every row now reads its neighbour block's scale
    assert not torch.equal(gq.gather_qmm(x, idx, wq, shifted), gq.gather_mm_dequant(x, idx, wq, ws))


def test_reference_reads_only_routed_experts():
    x, idx, wq, ws = sym8_case(*CASES[1])
    routed = set(idx.flatten().tolist())
    spoiled = wq.clone()
    for expert in set(range(wq.shape[0])) - routed:
        spoiled[expert] = 127
    assert routed != set(range(wq.shape[0]))
    assert torch.equal(gq.gather_qmm(x, idx, spoiled, ws), gq.gather_qmm(x, idx, wq, ws))


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [((4, 30, 256), torch.int8, "N % 32"), ((4, 32, 200), torch.int8, "Kp % 256"), ((4, 32, 256), torch.int16, "int8")],
)
def test_layout_is_checked(shape, dtype, message):
    wq = torch.zeros(shape, dtype=dtype)
    ws = torch.ones(shape[0], shape[1], shape[2] // gq.BLOCK, dtype=torch.float16)
    with pytest.raises(ValueError, match=message):
        gq.check_layout(wq, ws)


class RoutedMatmul(torch.nn.Module):
    """``[T, K] x [T, k] -> [T, k, N]`` over fixed sym8 weights, kernel or composite."""

    def __init__(self, wq, ws, use_kernel: bool) -> None:
        super().__init__()
        self.register_buffer("wq", wq)
        self.register_buffer("ws", ws)
        self.use_kernel = use_kernel

    def forward(self, x, idx):
        matmul = gq.gather_qmm if self.use_kernel else gq.gather_mm_dequant
        return (matmul(x, idx, self.wq, self.ws),)


def export(tmp_path: Path, case, use_kernel: bool) -> Path:
    x, idx, wq, ws = case
    out = tmp_path / f"routed-{'kernel' if use_kernel else 'composite'}.aimodel"
    kernel = "gather_qmm" if use_kernel else "gather_mm"
    module = RoutedMatmul(wq, ws, use_kernel)
    backend.export_aimodel(module, {"x": x, "idx": idx}, out, kernel=kernel, output_names=["y"])
    return out


@pytest.mark.slow
def test_runtime_composite_equals_reference_bit_exact(tmp_path):
    case = sym8_case(7, 8, 64, 256, 3, 2, small=True)
    out = export(tmp_path, case, use_kernel=False)
    x, idx, wq, ws = case
    got = backend.run_aimodel(out, {"x": x.numpy(), "idx": idx.numpy()})["y"]
    want = gq.gather_qmm(x, idx, wq, ws).numpy()
    assert np.abs(want).max() > 8
    assert np.array_equal(got, want)


@pytest.mark.slow
def test_kernel_converts_and_stores_int8_slabs(tmp_path):
    case = sym8_case(8, 8, 64, 512, 2, 2)
    summary = backend.storage_summary(export(tmp_path, case, use_kernel=True))
    assert summary["ops"].get("metal4_kernel") == 1
    assert "blockwise_shift_scale" not in summary["ops"]  # the kernel dequantizes itself
    assert "batch_matmul" not in summary["ops"]
    assert summary["storage"]["Int8"] == case[2].numel()
    assert summary["outputs"] == {"y": "NDArray (Float16, 2 × 2 × 64)"}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the kernel may be executable")
def test_kernel_model_cannot_execute_on_linux(tmp_path):
    case = sym8_case(9, 4, 32, 256, 1, 2)
    out = export(tmp_path, case, use_kernel=True)
    assert backend.has_custom_kernel(out)
    with pytest.raises(KernelNotExecutableError, match="metal4_kernel") as info:
        backend.run_aimodel(out, {"x": case[0].numpy(), "idx": case[1].numpy()})
    assert "gather_mm" in info.value.hint
    assert info.value.exit_code == 5
