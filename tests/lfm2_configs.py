"""Tiny LFM2-MoE ``config.json`` dicts shared by tests (and the zoo's offline recipe)."""

# The zoo's offline tiny recipe: LFM2-8B-A1B's structure at toy size. Expert matmul
# dims are multiples of 32 so block-32 quantization schemes apply unchanged.
TINY_LFM2_MOE = {
    "vocab_size": 512,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "layer_types": ["conv", "full_attention", "conv", "full_attention"],
    "num_dense_layers": 1,
    "intermediate_size": 128,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "conv_L_cache": 3,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
}

# Every switch flipped the other way: attention first, no dense layer, MQA, conv bias,
# longer kernel, no expert bias, unnormalised scaled top-3, untied head, legacy rope_theta.
TINY_LFM2_MOE_VARIANT = {
    "vocab_size": 320,
    "hidden_size": 64,
    "num_hidden_layers": 5,
    "layer_types": ["full_attention", "conv", "conv", "full_attention", "conv"],
    "num_dense_layers": 0,
    "intermediate_size": 96,
    "num_experts": 4,
    "num_experts_per_tok": 3,
    "moe_intermediate_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "conv_L_cache": 4,
    "conv_bias": True,
    "use_expert_bias": False,
    "norm_topk_prob": False,
    "routed_scaling_factor": 2.5,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
    "max_position_embeddings": 2048,
}
