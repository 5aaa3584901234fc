"""How fast the Linux Core AI CPU runtime multiplies: why the full-size gate cannot run there.

Figures, not assertions: `python bench/coreai_runtime_rate.py [RUNS]`. Each form is one
small graph converted with coreai-torch and run RUNS times through the runtime (first call
dropped); it prints the median call time and the multiply-accumulate rate, next to torch
eager on the same shapes. The flagship's gate twin does per token about one routed expert
matmul of each form below per MoE layer and projection, plus the 128000 x 2048 head: the
last line scales the measured rate to one flagship token.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

EXPERTS, ROWS, COLS, TOP_K = 32, 1792, 2048, 4
# Multiply-accumulates per flagship token (8.47B parameters, ~1.5B active per token).
FLAGSHIP_ACTIVE_MACS = 1.5e9


class DenseMatmul(nn.Module):
    def __init__(self, weight: torch.Tensor, compute: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight", weight.to(compute))
        self.compute = compute

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.to(self.compute), self.weight.t()).half()


class RoutedComposite(nn.Module):
    """The gate twin's form: the stock GatherMM composite over all experts, top-4 routed."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        from zootool.kernels.gather_qmm import gather_mm

        return gather_mm(x, idx, self.weight)


def median_call(module: nn.Module, x: torch.Tensor, idx: torch.Tensor, runs: int) -> float:
    from zootool.backends.coreai.export import export_aimodel
    from zootool.backends.coreai.runtime import AimodelSession

    with tempfile.TemporaryDirectory() as tmp:
        asset = export_aimodel(module, {"x": x, "idx": idx}, Path(tmp) / "m.aimodel", output_names=["y"])
        with AimodelSession(asset) as session:
            times = []
            for _ in range(runs + 1):
                start = time.perf_counter()
                session.run({"x": x.numpy(), "idx": idx.numpy()})
                times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def torch_call(module: nn.Module, x: torch.Tensor, idx: torch.Tensor, runs: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(runs + 1):
            start = time.perf_counter()
            module(x, idx)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(runs: int) -> None:
    weights = (torch.randn(EXPERTS, ROWS, COLS) * 0.02).half()
    x, idx = torch.randn(1, COLS).half(), torch.tensor([[3, 7, 11, 30]], dtype=torch.int32)
    forms = {
        "dense fp16 [1792x2048]": (DenseMatmul(weights[0], torch.float16), ROWS * COLS),
        "dense fp32 [1792x2048]": (DenseMatmul(weights[0], torch.float32), ROWS * COLS),
        "GatherMM top-4 of 32 fp16": (RoutedComposite(weights), TOP_K * ROWS * COLS),
    }
    rates = {}
    for name, (module, macs) in forms.items():
        eager = torch_call(DenseMatmul(weights[0], torch.float32), x, idx, runs) if "fp32" in name else None
        seconds = median_call(module, x, idx, runs)
        rates[name] = macs / seconds
        extra = f"  (torch eager fp32: {eager * 1e3:.2f} ms)" if eager else ""
        print(f"{name:<28} {seconds * 1e3:8.1f} ms/call  {macs / seconds / 1e6:8.1f} M MAC/s{extra}")
    per_token = FLAGSHIP_ACTIVE_MACS / rates["GatherMM top-4 of 32 fp16"]
    print(f"one flagship token at the GatherMM fp16 rate: ~{per_token:.0f} s; "
          f"a 100-token gate side: ~{per_token * 100 / 3600:.1f} h")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
