"""Llama-family parameter counts from recipe numbers agree exactly with transformers (meta device)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_configs import PUBLISHED_BILLIONS, REAL, TINY

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from zootool.arch.llama.schema import LlamaArch  # noqa: E402
from zootool.errors import NotImplementedFeatureError  # noqa: E402
from zootool.config.registry import get  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def hf_config(config: dict):
    settings = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    return transformers.AutoConfig.for_model(config["model_type"], **settings)


def transformers_count(config: dict) -> tuple[int, dict[str, tuple]]:
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config(config))
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    return sum(p.numel() for p in model.parameters()), shapes


def arch_from(config: dict) -> LlamaArch:
    """Through the `zoo new` path: a full transformers config.json -> recipe fields -> arch."""
    return LlamaArch(**LlamaArch.hf_config_to_fields(hf_config(config).to_dict()))


def check_against_transformers(arch: LlamaArch) -> int:
    expected, shapes = transformers_count(arch.to_hf_config())
    specs = arch.tensors()
    assert sum(s.numel for s in specs if s.parameter) == expected
    stored = {s.name: s.shape for s in specs}
    tied = {"lm_head.weight"} if arch.tie_embeddings else set()
    assert stored == {k: v for k, v in shapes.items() if k not in tied}
    return expected


@pytest.mark.parametrize("repo", sorted(REAL))
def test_real_config_counts_match_transformers(repo):
    arch = arch_from(REAL[repo])
    count = check_against_transformers(arch)
    # The recipe numbers also count what transformers counts for the upstream config itself.
    assert count == transformers_count(REAL[repo])[0]
    if repo in PUBLISHED_BILLIONS:
        assert abs(count / 1e9 - PUBLISHED_BILLIONS[repo]) / PUBLISHED_BILLIONS[repo] < 0.03


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_variants_count_and_round_trip(name):
    arch = arch_from(TINY[name])
    check_against_transformers(arch)
    assert LlamaArch(**LlamaArch.hf_config_to_fields(arch.to_hf_config())) == arch


def test_switches_reach_the_arch():
    llama, qwen, mistral = (arch_from(TINY[name]) for name in ("llama", "qwen3", "mistral"))
    assert llama.attention_bias and llama.mlp_bias and llama.rope_scaling.rope_type == "llama3"
    assert qwen.qk_norm and qwen.resolved_head_dim == 32 and qwen.tie_embeddings
    assert mistral.sliding_window == 5 and not mistral.qk_norm


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
    ({"sliding-window": 4}, "sliding-window is supported for model-type mistral only"),
    ({"hidden-size": 66}, r"4 does not divide hidden-size \(66\)"),
])  # fmt: skip
def test_inconsistent_numbers_are_refused(changes, message):
    fields = LlamaArch.hf_config_to_fields(hf_config(TINY["llama"]).to_dict())
    with pytest.raises(ValueError, match=message):
        LlamaArch(**{**fields, **changes})


def test_unsupported_upstream_options_are_named():
    sliding = hf_config({**TINY["qwen3"], "use_sliding_window": True, "sliding_window": 8}).to_dict()
    with pytest.raises(NotImplementedFeatureError, match="sliding-window"):
        LlamaArch.hf_config_to_fields(sliding)
    yarn = {**TINY["llama"], "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}
    with pytest.raises(NotImplementedFeatureError, match="RoPE type 'yarn'"):
        LlamaArch.hf_config_to_fields(yarn)
