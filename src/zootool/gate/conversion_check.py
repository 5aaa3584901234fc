"""A streamed gate's check of the converted program: a conversion loss cannot hide behind a CLEAN.

A streamed candidate side (``gate.streamed``) is torch's arithmetic over the bundle's
quantized weights, not the converted program. So the gate also runs the converted program
(the bundle, or its kernel-free twin) through the engine driver over the first few tokens
it fed, and compares its logits with the streamed side's at those positions. fp16
arithmetic differs between the two (the Linux Core AI CPU runtime accumulates fp16
matmuls in fp16); a conversion that lost something (a wrong mask, rotation or scale)
moves logits by whole units and changes clear top-1 choices.

The check fails when, at any checked position, the program's top-1 differs from the
streamed side's although the streamed side preferred its own token by ``CHECK_MARGIN``
or more, or when the logits differ by more than ``CHECK_MEAN_ABS`` on average (the mean,
not the maximum: one of 49k logits in fp16 arithmetic strays further than the whole does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

# Measured on SmolLM2-135M-Instruct int8-all, 8 tokens: the converted program vs the streamed
# side differ by a mean 0.25 and a max 1.38 logit, with no top-1 change (tests/build/test_real_model.py).
CHECK_MARGIN = 1.0
CHECK_MEAN_ABS = 1.0


class ConversionCheck(BaseModel):
    runtime: str
    tokens: int
    mean_abs: float
    max_abs: float
    disagreements: int  # positions whose top-1 changed although the streamed side preferred its own by >= margin
    margin: float = CHECK_MARGIN
    mean_abs_allowed: float = CHECK_MEAN_ABS
    passed: bool

    @property
    def line(self) -> str:
        return (f"the converted program against the streamed candidate over the first {self.tokens} tokens: "
                f"mean |logit difference| {self.mean_abs:.3f} (allowed {self.mean_abs_allowed}), max {self.max_abs:.3f}, "
                f"{self.disagreements} clear top-1 change{'s' if self.disagreements != 1 else ''}")


def check_conversion(model_dir: Path, feed: Sequence[int], streamed: np.ndarray, tokens: int, runtime: str) -> ConversionCheck:
    """Run ``feed[:tokens]`` through the converted program and compare with the streamed logits there."""
    from .engine import teacher_forced_logits

    tokens = max(1, min(tokens, len(feed)))
    program = teacher_forced_logits(model_dir, list(feed[:tokens])).astype(np.float64)
    return compare(program, np.asarray(streamed[:tokens], dtype=np.float64), runtime)


def compare(program: np.ndarray, streamed: np.ndarray, runtime: str) -> ConversionCheck:
    diff = np.abs(program - streamed)
    rows = np.arange(len(streamed))
    picked, preferred = program.argmax(-1), streamed.argmax(-1)
    gaps = streamed[rows, preferred] - streamed[rows, picked]
    disagreements = int(((picked != preferred) & (gaps >= CHECK_MARGIN)).sum())
    mean_abs = float(diff.mean())
    return ConversionCheck(
        runtime=runtime, tokens=len(streamed), mean_abs=round(mean_abs, 5), max_abs=round(float(diff.max()), 5),
        disagreements=disagreements, passed=disagreements == 0 and mean_abs <= CHECK_MEAN_ABS,
    )
