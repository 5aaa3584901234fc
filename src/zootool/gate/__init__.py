"""The quality gate: fp32 oracle, margin rule, the engine driver that runs a bundle."""
