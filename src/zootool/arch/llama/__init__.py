"""Llama-style dense decoders (Llama, Qwen3, Mistral): schema, layers, decode graph, weights."""
