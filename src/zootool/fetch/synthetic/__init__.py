"""Synthetic checkpoints: seeded random weights of a real architecture, any size, constant memory."""

from .generate import (
    DEFAULT_SHARD_SIZE, GENERATOR_VERSION, WEIGHT_DTYPES, generate_checkpoint,
)

__all__ = ["DEFAULT_SHARD_SIZE", "GENERATOR_VERSION", "WEIGHT_DTYPES", "generate_checkpoint"]
