"""The fp32-oracle margin rule: which disagreements are real flips, and the verdict.

A candidate disagrees with the oracle at a position when its top-1 token differs.
The disagreement is a REAL flip only if the oracle itself clearly preferred its own
token: ``oracle_logit[oracle_top1] - oracle_logit[candidate_top1] >= margin``.
Near-ties in the oracle are not the candidate's fault.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class PositionScore(BaseModel):
    position: int
    oracle_token: int
    candidate_token: int
    oracle_gap: float
    flip: bool


class Verdict(BaseModel):
    positions: int
    flips: int
    fp16_flips: int
    introduced: int
    max_introduced: int
    passed: bool
    clean: bool

    @property
    def line(self) -> str:
        """One line for cards and logs, e.g. ``CLEAN (+0 flips/41 = fp16 ceiling)``."""
        count = max(self.introduced, 0)
        plural = "flip" if count == 1 else "flips"
        if self.clean:
            return f"CLEAN (+{count} {plural}/{self.positions} = fp16 ceiling)"
        state = "PASS" if self.passed else "FAIL"
        return (
            f"{state} (+{self.introduced} {plural}/{self.positions} over fp16's {self.fp16_flips}; "
            f"allowed {self.max_introduced})"
        )


def score_positions(
    oracle: Sequence[Sequence[float]], candidate_tokens: Sequence[int], margin: float
) -> list[PositionScore]:
    """Score each position's candidate top-1 against the oracle's logits."""
    logits = np.asarray(oracle, dtype=np.float64)
    if len(logits) != len(candidate_tokens):
        raise ValueError(f"{len(logits)} oracle positions but {len(candidate_tokens)} candidate positions")
    scores = []
    for position, (row, picked) in enumerate(zip(logits, candidate_tokens)):
        best = int(np.argmax(row))
        gap = float(row[best] - row[picked])
        scores.append(PositionScore(
            position=position, oracle_token=best, candidate_token=int(picked),
            oracle_gap=gap, flip=picked != best and gap >= margin,
        ))
    return scores


def count_flips(scores: Sequence[PositionScore]) -> int:
    return sum(score.flip for score in scores)


def verdict(candidate_flips: int, fp16_flips: int, positions: int, max_introduced: int) -> Verdict:
    """Introduced flips = candidate flips - fp16 flips; pass when within the recipe's allowance."""
    introduced = candidate_flips - fp16_flips
    return Verdict(
        positions=positions,
        flips=candidate_flips,
        fp16_flips=fp16_flips,
        introduced=introduced,
        max_introduced=max_introduced,
        passed=introduced <= max_introduced,
        clean=introduced <= 0,
    )
