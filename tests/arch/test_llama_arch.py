"""Llama-family parameter counts from recipe numbers agree exactly with transformers (meta device)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_configs import PUBLISHED_BILLIONS, REAL, TINY

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from arch_fixtures import check_against_transformers  # noqa: E402

from zootool.arch.families.llama import LlamaArch  # noqa: E402
from zootool.arch.registry import architecture_of  # noqa: E402
from zootool.errors import ConfigError, NotImplementedFeatureError  # noqa: E402
from zootool.config.registry import get  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def hf_config(config: dict):
    settings = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    return transformers.AutoConfig.for_model(config["model_type"], **settings)


def transformers_count(config: dict) -> int:
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config(config))
    return sum(p.numel() for p in model.parameters())


def arch_from(config: dict) -> LlamaArch:
    """Through the `zoo new` path: a full transformers config.json -> the typed config."""
    return architecture_of(hf_config(config).to_dict(), "config.json")


@pytest.mark.parametrize("repo", sorted(REAL))
def test_real_config_counts_match_transformers(repo):
    arch = arch_from(REAL[repo])
    count = check_against_transformers(arch)
    # The recipe numbers also count what transformers counts for the upstream config itself.
    assert count == transformers_count(REAL[repo])
    if repo in PUBLISHED_BILLIONS:
        assert abs(count / 1e9 - PUBLISHED_BILLIONS[repo]) / PUBLISHED_BILLIONS[repo] < 0.03


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_variants_count_and_round_trip(name):
    arch = arch_from(TINY[name])
    check_against_transformers(arch)
    assert architecture_of(arch.to_hf(), "to_hf") == arch


def test_switches_reach_the_arch():
    llama, qwen, mistral = (arch_from(TINY[name]) for name in ("llama", "qwen3", "mistral"))
    assert llama.attention_bias and llama.mlp_bias and llama.rope_scaling.rope_type == "llama3"
    assert qwen.attention(0).qk_norm == "head" and qwen.resolved_head_dim == 32 and qwen.tie_embeddings
    assert mistral.sliding_window == 5 and mistral.attention(0).qk_norm == "none"
    assert mistral.attention(2).window == 5  # Mistral's window holds for every layer


def test_qwen3_recipe_has_the_upstream_numbers():
    recipe, _ = get(Zoo(REPO), "qwen3-0.6b")
    assert recipe.architecture == arch_from(REAL["Qwen/Qwen3-0.6B"])
    assert recipe.model.license == "apache-2.0"
    assert {"mac", "iphone"} <= set(recipe.targets)


def test_tiny_llama_recipe_counts_match_transformers():
    recipe, _ = get(Zoo(REPO), "tiny-llama")
    check_against_transformers(recipe.architecture)


@pytest.mark.parametrize("changes,message", [
    ({"num-key-value-heads": 3}, r"3 does not divide num-attention-heads \(4\)"),
    ({"model-type": "mistral"}, "model-type mistral has no attention-bias option"),
    ({"model-type": "qwen3", "attention-bias": False}, "model-type qwen3 has no mlp-bias option"),
    ({"sliding-window": 4}, "is set, but no layer of layer-types is sliding_attention"),
    ({"hidden-size": 66}, r"4 does not divide hidden-size \(66\)"),
])  # fmt: skip
def test_inconsistent_numbers_are_refused(changes, message):
    fields = arch_from(TINY["llama"]).recipe_fields()
    with pytest.raises(ValueError, match=message):
        LlamaArch.model_validate({**fields, **changes})


def test_qwen3_sliding_layers_are_read_and_yarn_is_supported():
    sliding = arch_from({**TINY["qwen3"], "use_sliding_window": True, "sliding_window": 8, "max_window_layers": 1})
    assert sliding.layer_types == ("full_attention", "sliding_attention", "sliding_attention")
    assert [sliding.window(i) for i in range(3)] == [None, 8, 8]
    yarn = arch_from({**TINY["llama"], "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                                                          "original_max_position_embeddings": 64}})
    assert yarn.rope_scaling.rope_type == "yarn"
    with pytest.raises(NotImplementedFeatureError, match="RoPE type 'dynamic'"):
        arch_from({**TINY["llama"], "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 4.0}})
