"""The fp32-oracle margin rule: which disagreements are real flips, and the verdict.

A candidate disagrees with the oracle at a position when its top-1 token differs.
The disagreement is a REAL flip only if the oracle itself clearly preferred its own
token: ``oracle_logit[oracle_top1] - oracle_logit[candidate_top1] >= margin``.
Near-ties in the oracle are not the candidate's fault.

Transcripts keep the oracle's top-k logits per position (``OracleRow``). A candidate
token outside them has an oracle logit of at most the k-th one, so its gap is at
least ``top1 - kth``; such a disagreement always counts as a flip (the gate errs
towards failing rather than guessing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class OracleRow(BaseModel):
    """The oracle's top-k tokens at one position, best first, with their logits."""

    tokens: list[int]
    logits: list[float]

    @classmethod
    def from_logits(cls, row: Sequence[float], k: int) -> "OracleRow":
        values = np.asarray(row, dtype=np.float64)
        order = np.argsort(-values, kind="stable")[:k]
        return cls(tokens=[int(t) for t in order], logits=[float(values[t]) for t in order])

    def gap_to(self, token: int) -> tuple[float, bool]:
        """(gap from top-1 to ``token``, whether ``token`` is inside the kept top-k)."""
        if token in self.tokens:
            return self.logits[0] - self.logits[self.tokens.index(token)], True
        return self.logits[0] - self.logits[-1], False


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


def score_positions(oracle: Sequence[OracleRow], candidate_tokens: Sequence[int], margin: float) -> list[PositionScore]:
    """Score each position's candidate top-1 against the oracle's logits."""
    if len(oracle) != len(candidate_tokens):
        raise ValueError(f"{len(oracle)} oracle positions but {len(candidate_tokens)} candidate positions")
    scores = []
    for position, (row, picked) in enumerate(zip(oracle, candidate_tokens)):
        gap, known = row.gap_to(int(picked))
        disagrees = int(picked) != row.tokens[0]
        scores.append(PositionScore(
            position=position, oracle_token=row.tokens[0], candidate_token=int(picked),
            oracle_gap=gap, flip=disagrees and (gap >= margin or not known),
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
