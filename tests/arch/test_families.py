"""Every architecture family against transformers itself: config, tensor layout, and decode graph.

One harness for all families (as mlx-lm's ``model_test_runner``): a family that joins the
registry gets a fixture in ``arch_fixtures`` and is held to the same tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from arch_fixtures import ARCHITECTURES, STEPS, check_against_transformers, transformers_config  # noqa: E402
from safetensors import safe_open  # noqa: E402

from zootool.arch.decode_graph import decode_tokens  # noqa: E402
from zootool.arch.decoder import build_decode_graph  # noqa: E402
from zootool.arch.registry import FAMILIES, MODEL_TYPES, architecture_of  # noqa: E402
from zootool.arch.weights import load_weights  # noqa: E402
from zootool.errors import ConfigError, NotImplementedFeatureError  # noqa: E402

NAMES = sorted(ARCHITECTURES)
CONTEXT = 64


def arch_of(checkpoint: Path):
    return architecture_of(json.loads((checkpoint / "config.json").read_text()), str(checkpoint))


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_has_a_family(name):
    model_type = ARCHITECTURES[name][0]
    assert model_type in MODEL_TYPES
    assert set(FAMILIES) >= {"llama", "lfm2_moe", "lfm2", "qwen3_moe", "mixtral", "qwen2", "gemma3_text", "phi3",
                             "olmo2", "smollm3", "qwen2_moe", "qwen3_next"}


@pytest.mark.parametrize("name", NAMES)
def test_weight_map_and_count_are_transformers(name):
    hf_config = transformers_config(name)
    check_against_transformers(MODEL_TYPES[hf_config.model_type].from_hf(hf_config))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_layout_is_what_save_pretrained_writes(name, arch_checkpoint):
    checkpoint = arch_checkpoint(name)
    with safe_open(checkpoint / "model.safetensors", "pt") as handle:
        saved = {n: tuple(handle.get_slice(n).get_shape()) for n in handle.keys()}
    assert {spec.name: spec.shape for spec in arch_of(checkpoint).checkpoint_tensors()} == saved


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_transformers(name, arch_checkpoint):
    arch = arch_of(arch_checkpoint(name))
    assert architecture_of(arch.to_hf(), "to_hf") == arch
    assert type(arch).model_validate(arch.recipe_fields()) == arch  # the recipe's [architecture] table


@pytest.fixture(scope="module")
def oracle(arch_checkpoint):
    """Token ids and transformers' own fp32 logits over the whole sequence, per fixture."""
    found = {}

    def get(name: str):
        if name not in found:
            checkpoint = arch_checkpoint(name)
            model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
            ids = torch.randint(0, model.config.vocab_size, (STEPS,), generator=torch.Generator().manual_seed(5))
            with torch.no_grad():
                found[name] = (ids.tolist(), model(ids[None]).logits[0])
        return found[name]

    return get


def loaded_graph(checkpoint: Path, dtype=torch.float32):
    graph = build_decode_graph(arch_of(checkpoint), CONTEXT, dtype)
    load_weights(graph, checkpoint)
    return graph.eval()


@pytest.mark.parametrize("step", [1, 8, STEPS])
@pytest.mark.parametrize("name", NAMES)
def test_decode_graph_matches_transformers(name, step, arch_checkpoint, oracle):
    ids, expected = oracle(name)
    actual = decode_tokens(loaded_graph(arch_checkpoint(name)), ids, step)
    assert torch.allclose(actual, expected, atol=2e-5), float((actual - expected).abs().max())


@pytest.mark.parametrize("name", ["qwen3", "gemma3_text", "mixtral"])
def test_a_sliding_window_changes_the_logits(name, arch_checkpoint, oracle):
    """The windows cut in within the test sequence: without them the graph would disagree."""
    ids, expected = oracle(name)
    graph = loaded_graph(arch_checkpoint(name))
    graph.windows = []  # every layer's mask the full causal one
    unwindowed = decode_tokens(graph, ids, STEPS)
    assert not torch.allclose(unwindowed, expected, atol=1e-3)


def test_longrope_switches_to_its_long_factors_past_the_original_context(tmp_path):
    from arch_fixtures import write_fixture

    checkpoint = write_fixture(tmp_path / "phi3-long", "phi3", original_max_position_embeddings=16,
                               rope_parameters={**ARCHITECTURES["phi3"][1]["rope_parameters"],
                                                "original_max_position_embeddings": 16})
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    ids = list(range(3, 3 + 24))
    with torch.no_grad():
        long_expected = model(torch.tensor([ids])).logits[0]
        short_expected = model(torch.tensor([ids[:12]])).logits[0]
    graph = loaded_graph(checkpoint)
    assert torch.allclose(decode_tokens(graph, ids, len(ids)), long_expected, atol=2e-5)
    assert torch.allclose(decode_tokens(graph, ids[:12], 12), short_expected, atol=2e-5)


def test_recipe_and_checkpoint_differences_name_every_key(arch_checkpoint):
    arch = arch_of(arch_checkpoint("gemma3_text"))
    edited = type(arch).model_validate(arch.model_dump() | {"rope_local_base_freq": 20000.0, "sliding_window": 5})
    assert edited.differences(arch) == ["rope-local-base-freq: recipe 20000.0, checkpoint 1000.0",
                                        "sliding-window: recipe 5, checkpoint 6"]


def test_a_float_written_as_float32_is_the_same_setting(arch_checkpoint):
    arch = arch_of(arch_checkpoint("gemma3_text"))
    eps = arch.model_dump()["rms_norm_eps"]
    from_gguf = type(arch).model_validate(arch.model_dump() | {"rms_norm_eps": float(numpy.float32(eps))})
    assert float(numpy.float32(eps)) != eps and from_gguf.differences(arch) == []
    wider = type(arch).model_validate(arch.model_dump() | {"rms_norm_eps": eps * 1.001})
    assert [diff.split(":")[0] for diff in wider.differences(arch)] == ["rms-norm-eps"]


def test_unknown_and_not_yet_model_types_say_where_families_live():
    with pytest.raises(NotImplementedFeatureError, match="'bert' is not a family this zoo builds") as unknown:
        architecture_of({"model_type": "bert"}, "config.json")
    with pytest.raises(ConfigError, match="'no-such-model' is not a transformers model type"):
        architecture_of({"model_type": "no-such-model"}, "config.json")
    with pytest.raises(NotImplementedFeatureError, match="gated delta-net") as not_yet:
        architecture_of({"model_type": "qwen3_5"}, "config.json")
    for error in (unknown.value, not_yet.value):
        assert "src/zootool/arch/families/" in error.hint and "qwen3_moe" in error.hint


def test_an_unsupported_rope_type_is_named():
    config = transformers_config("llama", rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0})
    with pytest.raises((ConfigError, NotImplementedFeatureError), match="dynamic"):
        architecture_of(config.to_dict(), "config.json")


@pytest.mark.parametrize("name", NAMES)
def test_nothing_in_the_graph_grows_with_its_context(name):
    """RoPE angles come from the positions and the KV caches are states: a graph for 64 tokens and one
    for 32768 hold the same tensors, so a platform's context costs no stored bytes."""
    arch = architecture_of(transformers_config(name).to_dict(), name)

    def tensors(context: int) -> dict[str, tuple[int, ...]]:
        with torch.device("meta"):
            graph = build_decode_graph(arch, context)
        return {key: tuple(t.shape) for key, t in [*graph.named_parameters(), *graph.named_buffers()]}

    assert tensors(CONTEXT) == tensors(32768)


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_through_the_converters_composites_matches_transformers(name, arch_checkpoint, oracle):
    """What a Core AI export computes (``use_composites``) is still transformers' model, in torch."""
    pytest.importorskip("coreai_torch")
    ids, expected = oracle(name)
    graph = loaded_graph(arch_checkpoint(name))
    used = graph.use_composites()
    # (1 + w) norms (Gemma 3, Qwen3-Next, Qwen3.5) stay decomposed; every family here has RoPE.
    assert used == (["rope"] if graph.layout.norm.offset else ["rms_norm", "rope"]), used
    assert torch.allclose(decode_tokens(graph, ids, 8), expected, atol=2e-5)
