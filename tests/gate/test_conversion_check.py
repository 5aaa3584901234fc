"""The streamed gate's check of the converted program, on hand-made logits and transcripts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zootool.gate.conversion_check import CHECK_MEAN_ABS, compare
from zootool.gate.margin import OracleRow
from zootool.gate.run import Side, Transcript, finish

STREAMED = np.array([
    [5.0, 1.0, 0.0],   # clear top-1 = 0
    [2.0, 1.5, 0.0],   # top-1 = 0 by 0.5: fp16 noise may change it
    [0.0, 3.0, 0.5],
])


def test_fp16_noise_passes_and_a_near_tie_change_is_no_disagreement():
    program = STREAMED + np.array([[0.2, -0.1, 0.0], [-0.3, 0.3, 0.0], [0.0, 0.1, -0.2]])
    check = compare(program, STREAMED, "Core AI")
    assert check.passed and check.disagreements == 0 and check.max_abs == 0.3 and check.tokens == 3
    assert check.mean_abs == 0.13333


def test_a_clear_top1_change_or_a_large_move_of_the_logits_fails():
    moved = STREAMED.copy()
    moved[0] = [1.0, 1.5, 0.0]  # the streamed side preferred token 0 by 4 logits
    check = compare(moved, STREAMED, "Core AI")
    assert not check.passed and check.disagreements == 1
    shifted = STREAMED + 1.5 * CHECK_MEAN_ABS  # a lost offset or scale: every logit moved, no top-1 changed
    check = compare(shifted, STREAMED, "Core AI")
    assert not check.passed and check.disagreements == 0
    assert "mean |logit difference| 1.500 (allowed 1.0), max 1.500" in check.line
    one_stray = STREAMED + np.array([[0.0, 0.0, 2.5], [0, 0, 0], [0, 0, 0]])
    assert compare(one_stray, STREAMED, "Core AI").passed  # one stray logit is fp16 noise, not a lost op


def transcript(conversion_passed: bool | None) -> Transcript:
    rows = [OracleRow.from_logits(row, k=3) for row in STREAMED]
    side = Side(runtime="torch", tokens=[0, 0, 1], flips=0, flags=[False] * 3, gaps=[0.0] * 3)
    candidate = side.model_copy()
    if conversion_passed is not None:
        program = STREAMED if conversion_passed else STREAMED + 3.0 * np.eye(3)
        candidate.conversion = compare(program, STREAMED, "Core AI")
    return Transcript(
        recipe="r", target="mac", plan_hash="h", source={}, margin=0.1, max_introduced_flips=1, positions=3,
        prompt="p", paragraph="p", input_ids=[1], forced_tokens=[0, 0, 1], oracle_tokens=[0, 0, 1],
        oracle_top=rows, oracle_runtime="fp32", fp16=side, candidate=candidate,
    )


def test_a_failed_conversion_check_fails_a_clean_streamed_gate(tmp_path: Path):
    assert finish(transcript(True), tmp_path / "a.json").summary()["verdict"] == "CLEAN"
    assert finish(transcript(None), tmp_path / "b.json").summary()["verdict"] == "CLEAN"
    failed = finish(transcript(False), tmp_path / "c.json")
    summary = failed.summary()
    assert summary["verdict"] == "FAIL" and not summary["passed"]
    assert failed.line.startswith("FAIL (conversion check: the converted program against the streamed candidate")
    assert failed.line.endswith("streamed gate CLEAN (+0 flips/3 = fp16 ceiling))")
