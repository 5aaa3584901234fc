"""Margin/flip arithmetic on hand-made logits."""

from __future__ import annotations

import pytest

from zootool.gate.margin import OracleRow, count_flips, score_positions, verdict

FULL = [
    [5.0, 1.0, 0.0],   # clear top-1 = 0
    [2.0, 1.95, 0.0],  # near tie: 0 over 1 by 0.05
    [0.0, 3.0, 2.8],   # top-1 = 1, gap to 2 is 0.2
    [1.0, 1.0, 0.5],   # exact tie: argmax picks 0
]
ORACLE = [OracleRow.from_logits(row, k=3) for row in FULL]


def test_agreement_is_never_a_flip():
    scores = score_positions(ORACLE, [0, 0, 1, 0], margin=0.1)
    assert [s.flip for s in scores] == [False] * 4
    assert [s.oracle_gap for s in scores] == [0.0] * 4


def test_near_tie_disagreement_is_not_a_real_flip():
    scores = score_positions(ORACLE, [0, 1, 1, 1], margin=0.1)
    assert scores[1].flip is False and scores[1].oracle_gap == pytest.approx(0.05)
    assert scores[3].flip is False  # gap 0.0 at an exact tie


def test_clear_disagreements_are_flips_and_margin_is_inclusive():
    scores = score_positions(ORACLE, [2, 1, 2, 0], margin=0.2)
    assert [s.flip for s in scores] == [True, False, True, False]
    assert scores[0].oracle_gap == pytest.approx(5.0)
    assert scores[2].oracle_gap == pytest.approx(0.2)  # == margin counts
    assert count_flips(scores) == 2
    assert count_flips(score_positions(ORACLE, [2, 1, 2, 0], margin=0.21)) == 1


def test_token_outside_kept_top_k_is_a_flip_with_lower_bound_gap():
    rows = [OracleRow.from_logits([4.0, 3.0, 1.0, 0.5, 0.0], k=2)]
    assert rows[0].tokens == [0, 1]
    (score,) = score_positions(rows, [4], margin=0.1)
    assert score.flip and score.oracle_gap == pytest.approx(1.0)  # top1 - kth, a lower bound
    (flat,) = score_positions([OracleRow.from_logits([1.0, 0.99, 0.98], k=2)], [2], margin=0.1)
    assert flat.flip  # undecidable below the margin: counted against the candidate


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score_positions(ORACLE, [0, 0], margin=0.1)


@pytest.mark.parametrize("flips,fp16,allowed,passed,clean,line", [
    (1, 1, 1, True, True, "CLEAN (+0 flips/41 = fp16 ceiling)"),
    (0, 1, 0, True, True, "CLEAN (+0 flips/41 = fp16 ceiling)"),
    (2, 1, 1, True, False, "PASS (+1 flip/41 over fp16's 1; allowed 1)"),
    (13, 1, 1, False, False, "FAIL (+12 flips/41 over fp16's 1; allowed 1)"),
])
def test_verdict(flips, fp16, allowed, passed, clean, line):
    result = verdict(flips, fp16, 41, allowed)
    assert result.introduced == flips - fp16
    assert (result.passed, result.clean, result.line) == (passed, clean, line)
