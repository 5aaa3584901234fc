"""Checkpoints: pinned Hub downloads, upstream metadata, synthetic checkpoints."""
