"""Tiny random models of every architecture the zoo builds, made by transformers itself.

Each fixture is ``AutoModelForCausalLM.from_config`` of the architecture's own config class,
saved with ``save_pretrained`` (the Hub's tensor names and layouts), with the zoo's small
trained tokenizer and a LICENSE file: what a checkpoint downloaded from the Hub holds. Every
switch the zoo's blocks have is on in at least one fixture, and every sliding window is
shorter than the tests' sequences, so the windows really cut in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEED = 7
STEPS = 44  # the tests' sequence: every window below is shorter
LICENSE_TEXT = "Apache License Version 2.0, January 2004\n\n(the text of a test fixture)\n"

_BASE = {
    "vocab_size": 320, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 8192,
    "initializer_range": 0.1,
}  # fmt: skip
_LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
           "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
_LONGROPE = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
             "short_factor": [1.0, 1.1, 1.3, 1.6], "long_factor": [1.0, 2.0, 3.0, 4.5],
             "original_max_position_embeddings": 4096}
_SLIDING = ["sliding_attention", "full_attention", "sliding_attention"]

# name -> (model_type, settings on top of _BASE)
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {"attention_bias": True, "mlp_bias": True, "rope_parameters": _LLAMA3}),
    "qwen3": ("qwen3", {"num_key_value_heads": 1, "head_dim": 32, "tie_word_embeddings": True,
                        "layer_types": _SLIDING, "use_sliding_window": True, "sliding_window": 6}),
    "mistral": ("mistral", {"sliding_window": 5, "head_dim": 16}),
    "lfm2": ("lfm2", {"layer_types": ["conv", "full_attention", "conv"], "conv_bias": True,
                      "block_ffn_dim_multiplier": 1.5}),
    "lfm2_moe": ("lfm2_moe", {"num_hidden_layers": 4, "layer_types": ["conv", "full_attention", "conv",
                                                                       "full_attention"],
                              "num_dense_layers": 1, "num_experts": 4, "num_experts_per_tok": 2,
                              "moe_intermediate_size": 64}),
    "qwen3_moe": ("qwen3_moe", {"head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2,
                                "moe_intermediate_size": 64, "norm_topk_prob": True, "mlp_only_layers": [1]}),
    "mixtral": ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 7}),
    "qwen2": ("qwen2", {"layer_types": _SLIDING, "use_sliding_window": True, "sliding_window": 6,
                        "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                            "original_max_position_embeddings": 2048}}),
    "gemma3_text": ("gemma3_text", {"head_dim": 16, "layer_types": _SLIDING, "sliding_window": 6,
                                    "query_pre_attn_scalar": 24, "final_logit_softcapping": 30.0,
                                    "rope_parameters": {
                                        "full_attention": {"rope_type": "linear", "factor": 2.0,
                                                           "rope_theta": 100000.0},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0}}}),
    "phi3": ("phi3", {"rope_parameters": _LONGROPE, "original_max_position_embeddings": 4096,
                      "sliding_window": 10, "tie_word_embeddings": True}),
    "olmo2": ("olmo2", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}}),
    "smollm3": ("smollm3", {"no_rope_layers": [1, 0, 1], "attention_bias": True, "mlp_bias": True}),
    "qwen2_moe": ("qwen2_moe", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
                                "shared_expert_intermediate_size": 96, "mlp_only_layers": [0]}),
    # Two value heads per key head, key and value widths apart, a dense layer among the MoE ones.
    "qwen3_next": ("qwen3_next", {"head_dim": 16, "layer_types": ["linear_attention", "full_attention",
                                                                  "linear_attention"],
                                  "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16,
                                  "linear_value_head_dim": 8, "num_experts": 4, "num_experts_per_tok": 2,
                                  "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
                                  "mlp_only_layers": [1]}),
    "qwen3_5_text": ("qwen3_5_text", {"head_dim": 16, "layer_types": ["linear_attention", "full_attention",
                                                                      "linear_attention"],
                                      "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                                      "linear_key_head_dim": 16, "linear_value_head_dim": 8,
                                      "tie_word_embeddings": True}),
}  # fmt: skip


def transformers_config(name: str, **changes: Any) -> Any:
    """The fixture's transformers config object (with the zoo tokenizer's special-token ids)."""
    from transformers import AutoConfig

    from zootool.fetch.synthetic.tokenizer import build_tokenizer, special_token_ids

    model_type, settings = ARCHITECTURES[name]
    ids = special_token_ids(build_tokenizer(_BASE["vocab_size"]))
    return AutoConfig.for_model(model_type, **{**_BASE, **settings, **ids, **changes})


def write_fixture(directory: Path, name: str, **changes: Any) -> Path:
    """Save the fixture ``name`` (random weights, fp32) as a Hub checkpoint at ``directory``."""
    import torch
    from transformers import AutoModelForCausalLM

    from zootool.fetch.synthetic.tokenizer import build_tokenizer, save_tokenizer

    config = transformers_config(name, **changes)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _jitter_vectors(model)
    model.save_pretrained(directory)
    save_tokenizer(directory, build_tokenizer(config.vocab_size), config.max_position_embeddings)
    (directory / "LICENSE").write_text(LICENSE_TEXT)
    return directory


def _jitter_vectors(model: Any) -> None:
    """Norms start at one (Gemma's at zero) and biases at zero: move them, so a dropped norm,
    a wrong norm offset or a lost bias changes the logits."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for tensor in _vectors(model):
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.2)


def _vectors(model: Any) -> list[Any]:
    named = dict(model.named_parameters())
    named.update({n: b for n, b in model.named_buffers() if n.endswith("expert_bias")})
    return [t for t in named.values() if t.dim() == 1 and t.is_floating_point()]


def in_memory_layout(arch: Any) -> dict[str, tuple[int, ...]]:
    """What the weight-name map says transformers holds in memory: names and shapes (fused rows joined)."""
    from zootool.arch.weight_names import Rows

    shapes = {spec.name: spec.shape for spec in arch.tensors()}
    layout: dict[str, tuple[int, ...]] = {}
    for canonical, source in arch.sources().items():
        if canonical == "lm_head.weight" and arch.layout().tied:
            continue
        name = getattr(source, "stacked", None) or source.name
        shape = shapes[canonical]
        if isinstance(source, Rows):
            shape = (max(source.stop, layout.get(name, (0,))[0]), *shape[1:])
        layout[name] = shape
    return layout


def transformers_layout(hf_config: Any) -> tuple[int, dict[str, tuple[int, ...]]]:
    """transformers' parameter count and stored tensors (a tied head once) on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    tied = {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    shapes = {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in tied}
    return sum(p.numel() for p in model.parameters()), shapes


def check_against_transformers(arch: Any) -> int:
    """The typed config counts and lays out its tensors as transformers does; returns the count.

    Names may differ in memory (transformers renames Mixtral's ``block_sparse_moe`` to ``mlp``
    on load), so shapes are compared; the checkpoint's own names are held elsewhere.
    """
    from zootool.arch.hf_config import transformers_config as parsed

    count, shapes = transformers_layout(parsed({**arch.to_hf(), "pad_token_id": None}, "test"))
    assert sum(spec.numel for spec in arch.tensors() if spec.parameter) == count
    assert sorted(in_memory_layout(arch).values()) == sorted(shapes.values())
    return count
