"""The Core AI backend: export to .aimodel, quantization, the Linux CPU runtime."""
