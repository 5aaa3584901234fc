"""Tiny LFM2-MoE (or any family's) checkpoints with seeded random weights, for offline tests.

The test-fixture flavour of :func:`zootool.synthetic.generate_checkpoint`: fp32 weights by
default (the tests compare against an fp32 oracle) and LFM2-MoE when the config names no
``model_type``. The generator itself has no size limit and runs in constant memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .synthetic import DEFAULT_SHARD_SIZE, generate_checkpoint
from .synthetic.tokenizer import build_tokenizer

__all__ = ["build_tokenizer", "generate_tiny_checkpoint"]


def generate_tiny_checkpoint(
    out_dir: Path, config: dict[str, Any], seed: int, *, dtype: str = "float32", max_shard_size: str | None = None
) -> Path:
    """Write a seeded random checkpoint (``config.json`` keys in ``config``) with a small real tokenizer.

    ``dtype`` is ``float32`` (default, for oracle comparisons) or ``bfloat16`` like the Hub;
    ``max_shard_size`` (e.g. ``"200KB"``) writes a sharded checkpoint with an index.
    """
    return generate_checkpoint(
        out_dir, {"model_type": "lfm2_moe", **config}, seed, dtype=dtype,
        max_shard_size=max_shard_size or DEFAULT_SHARD_SIZE,
    )
