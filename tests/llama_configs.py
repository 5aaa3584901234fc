"""Real and tiny Llama-family ``config.json`` dicts shared by the llama tests.

The real ones carry the published numbers of each upstream checkpoint (only the keys
that shape parameters; everything else takes transformers' defaults).
"""

LLAMA3_ROPE = {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
}  # fmt: skip

REAL = {
    "Qwen/Qwen3-0.6B": {
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "tie_word_embeddings": True, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
    },
    "Qwen/Qwen3-8B": {
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288,
        "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "tie_word_embeddings": False, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
    },
    "meta-llama/Llama-3.2-1B": {
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
        "tie_word_embeddings": True, "rope_scaling": LLAMA3_ROPE, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
    },
    "meta-llama/Llama-3.1-8B": {
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "tie_word_embeddings": False, "rope_scaling": {**LLAMA3_ROPE, "factor": 8.0},
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
    },
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": {
        "model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
        "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "max_position_embeddings": 2048,
    },
    "mistralai/Mistral-7B-v0.1": {
        "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "max_position_embeddings": 32768,
    },
    "mistralai/Mistral-7B-Instruct-v0.3": {
        "model_type": "mistral", "vocab_size": 32768, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": None,
        "tie_word_embeddings": False, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
    },
}  # fmt: skip

# Published parameter counts, as a sanity check of the configs above (not of the code).
PUBLISHED_BILLIONS = {"Qwen/Qwen3-0.6B": 0.6, "meta-llama/Llama-3.2-1B": 1.24, "mistralai/Mistral-7B-v0.1": 7.24}

_TINY = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}  # fmt: skip

# Every switch of the family at toy size: biases, llama3 RoPE, q/k norm with a head_dim
# that is not hidden/heads, MQA, tied head, a sliding window shorter than the test sequence.
TINY = {
    "llama": {"model_type": "llama", **_TINY, "tie_word_embeddings": False, "attention_bias": True,
              "mlp_bias": True, "rope_parameters": {**LLAMA3_ROPE, "factor": 8.0,
                                                    "original_max_position_embeddings": 16}},
    "qwen3": {"model_type": "qwen3", **_TINY, "num_key_value_heads": 1, "head_dim": 32,
              "tie_word_embeddings": True, "rope_theta": 1000000.0},
    "mistral": {"model_type": "mistral", **_TINY, "sliding_window": 5},
}  # fmt: skip
