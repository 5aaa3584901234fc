"""The export-friendly LFM2-MoE decode graph against transformers' Lfm2MoeForCausalLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import Lfm2MoeForCausalLM

from graphs import build_decode_graph, load_weights

from zootool.arch.blocks.moe import GatherExpertMatmul, _IndexSelectGatherMM, replace_expert_matmul
from zootool.arch.decode_graph import decode_tokens
from zootool.arch.registry import architecture_of
from zootool.fetch.checkpoint import generate_tiny_checkpoint
from zootool.errors import ConfigError, FetchError, NotImplementedFeatureError

CONFIGS = {"tiny": TINY_LFM2_MOE, "variant": TINY_LFM2_MOE_VARIANT}
STEPS = 12
MAX_CONTEXT = 16


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lfm2")
    return {name: generate_tiny_checkpoint(root / name, config, seed=7) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def oracle(checkpoints: dict[str, Path]) -> dict[str, tuple[list[int], torch.Tensor]]:
    """Token ids and transformers' full-sequence fp32 logits, per config."""
    results = {}
    for name, directory in checkpoints.items():
        model = Lfm2MoeForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        ids = torch.randint(0, model.config.vocab_size, (STEPS,), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            results[name] = (ids.tolist(), model(ids[None]).logits[0])
    return results


def _loaded(directory: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    graph = build_decode_graph(json.loads((directory / "config.json").read_text()), MAX_CONTEXT, dtype)
    load_weights(graph, directory)
    return graph.eval()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_decode_steps_match_transformers(name, checkpoints, oracle):
    ids, want = oracle[name]
    got = decode_tokens(_loaded(checkpoints[name]), ids)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("step", [3, STEPS])
def test_prefill_with_many_tokens_per_call_matches(name, step, checkpoints, oracle):
    ids, want = oracle[name]
    torch.testing.assert_close(decode_tokens(_loaded(checkpoints[name]), ids, step), want, rtol=1e-4, atol=1e-5)


def test_graph_has_the_engine_contract_signature(checkpoints):
    graph = _loaded(checkpoints["variant"])
    assert graph.input_names == ["input_ids", "position_ids"] and graph.output_names == ["logits"]
    specs = {spec.name: spec for spec in graph.state_specs()}
    assert list(specs) == ["keyCache", "valueCache", "convState"]
    assert specs["keyCache"].shape == (2, 1, 1, -1, 16) and specs["keyCache"].kind == "kv_cache"
    assert specs["convState"].shape == (3, 1, 64, 3) and specs["convState"].kind == "fixed"  # kernel 4 keeps 3


def test_cache_rows_beyond_the_context_are_ignored(checkpoints):
    graph = _loaded(checkpoints["tiny"])
    ids, positions = torch.tensor([[11, 12]], dtype=torch.int32), torch.arange(5, dtype=torch.int32).view(1, 5)
    clean = graph.initial_states()
    noisy = {name: state.clone() for name, state in clean.items()}
    for name in ("keyCache", "valueCache"):
        noisy[name][:, :, :, 3:] = torch.randn_like(noisy[name][:, :, :, 3:]) * 100
    with torch.no_grad():
        clean_out = graph(ids, positions, *clean.values())
        noisy_out = graph(ids, positions, *noisy.values())
    assert torch.equal(clean_out, noisy_out)
    key = clean["keyCache"]
    assert key[:, :, :, :3].abs().max() == 0 and key[:, :, :, 3:5].abs().max() > 0 and key[:, :, :, 5:].abs().max() == 0


@pytest.mark.parametrize("query_len", [None, 1])
def test_graph_exports_and_matches_eager(query_len, checkpoints):
    import torch.fx.experimental._config as fx_config

    graph = _loaded(checkpoints["variant"])
    inputs = graph.example_inputs(query_len)
    with fx_config.patch(backed_size_oblivious=True):
        program = torch.export.export(graph, inputs, dynamic_shapes=graph.dynamic_shapes(query_len))
    targets = {str(node.target) for node in program.graph.nodes}
    assert not any(op in t for t in targets for op in ("histc", "nonzero", "index_put", "empty_permuted"))
    eager_states = [t.clone() for t in inputs[2:]]
    with torch.no_grad():
        got = program.module()(*inputs)
        want = graph(*inputs[:2], *eager_states)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for exported, eager in zip(inputs[2:], eager_states, strict=True):
        torch.testing.assert_close(exported, eager, rtol=0, atol=1e-6)  # states written in place, alike


class _DenseAllExperts(torch.nn.Module):
    """A deliberately different expert matmul: every expert computed, then picked."""

    calls = 0

    def forward(self, hidden, indices, weight):
        type(self).calls += 1
        if hidden.dim() == 2:
            everything = torch.einsum("eoi,ti->teo", weight, hidden)
            return torch.stack([everything[t, indices[t]] for t in range(hidden.shape[0])])
        return torch.einsum("tkoi,tki->tko", weight[indices], hidden)


def test_expert_matmul_is_pluggable(checkpoints, oracle):
    ids, want = oracle["tiny"]
    graph = _loaded(checkpoints["tiny"])
    assert replace_expert_matmul(graph, _DenseAllExperts) == 3  # layers 1..3 are sparse
    assert not any(isinstance(m, GatherExpertMatmul) for m in graph.modules())
    got = decode_tokens(graph, ids[:4])
    assert _DenseAllExperts.calls == 2 * 3 * 4
    torch.testing.assert_close(got, want[:4], rtol=1e-4, atol=1e-5)


def test_torch_only_gather_matches_coreai_gather_mm():
    gather_mm = pytest.importorskip("coreai_torch.composite_ops").GatherMM()
    weight, hidden = torch.randn(6, 5, 4), torch.randn(3, 2, 4, 1)
    indices = torch.tensor([[0, 5], [2, 2], [4, 1]])
    want = torch.stack([torch.stack([weight[indices[t, j]] @ hidden[t, j] for j in range(2)]) for t in range(3)])
    torch.testing.assert_close(_IndexSelectGatherMM()(weight, hidden, lhs_indices=indices), want)
    torch.testing.assert_close(gather_mm(weight, hidden, lhs_indices=indices), want)


def test_meta_device_build_then_load(checkpoints, oracle):
    config = json.loads((checkpoints["tiny"] / "config.json").read_text())
    with torch.device("meta"):
        graph = build_decode_graph(config, MAX_CONTEXT)
    load_weights(graph, checkpoints["tiny"])
    assert not any(t.is_meta for t in graph.state_dict().values())
    assert graph.lm_head.weight is graph.embed_tokens.weight  # tied: stored once in the asset
    ids, want = oracle["tiny"]
    torch.testing.assert_close(decode_tokens(graph.eval(), ids), want, rtol=1e-4, atol=1e-5)


def test_fp16_build_stays_close(checkpoints, oracle):
    ids, want = oracle["tiny"]
    got = decode_tokens(_loaded(checkpoints["tiny"], dtype=torch.float16), ids)
    assert got.dtype == torch.float16
    assert (got.float() - want).abs().max() < 0.05


def test_sharded_checkpoint_loads(tmp_path, oracle):
    directory = generate_tiny_checkpoint(tmp_path / "sharded", TINY_LFM2_MOE, seed=7, max_shard_size="400KB")
    assert (directory / "model.safetensors.index.json").is_file()
    assert len(list(directory.glob("model-*.safetensors"))) > 1
    ids, want = oracle["tiny"]
    torch.testing.assert_close(decode_tokens(_loaded(directory), ids), want, rtol=1e-4, atol=1e-5)


def test_stacked_expert_layout_loads(tmp_path, checkpoints, oracle):
    model = Lfm2MoeForCausalLM.from_pretrained(checkpoints["tiny"], dtype=torch.float32)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert "model.layers.1.feed_forward.experts.gate_up_proj" in tensors
    directory = tmp_path / "stacked"
    directory.mkdir()
    shutil.copy(checkpoints["tiny"] / "config.json", directory)
    save_file(tensors, directory / "model.safetensors")
    ids, want = oracle["tiny"]
    torch.testing.assert_close(decode_tokens(_loaded(directory), ids), want, rtol=1e-4, atol=1e-5)


def _copy_without(source: Path, target: Path, dropped: str) -> None:
    target.mkdir()
    shutil.copy(source / "config.json", target)
    with safe_open(source / "model.safetensors", "pt") as handle:
        kept = {name: handle.get_tensor(name) for name in handle.keys() if name != dropped}
    save_file(kept, target / "model.safetensors")


def test_missing_tensor_raises_fetch_error(tmp_path, checkpoints):
    dropped = "model.layers.2.feed_forward.experts.5.w3.weight"
    _copy_without(checkpoints["tiny"], tmp_path / "broken", dropped)
    with pytest.raises(FetchError, match=dropped.replace(".", r"\.")) as info:
        _loaded(tmp_path / "broken")
    assert info.value.hint and info.value.exit_code == 9


def test_truncated_file_raises_fetch_error(tmp_path, checkpoints):
    broken = tmp_path / "truncated"
    shutil.copytree(checkpoints["tiny"], broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FetchError, match="model.safetensors"):
        _loaded(broken)


def test_missing_shard_and_missing_dir_raise_fetch_error(tmp_path):
    directory = generate_tiny_checkpoint(tmp_path / "sharded", TINY_LFM2_MOE, seed=1, max_shard_size="400KB")
    next(iter(sorted(directory.glob("model-*.safetensors")))).unlink()
    with pytest.raises(FetchError, match="missing"):
        _loaded(directory)
    with pytest.raises(FetchError, match="does not exist"):
        load_weights(build_decode_graph(TINY_LFM2_MOE, 4), tmp_path / "nowhere")


def test_config_checkpoint_mismatch_raises_fetch_error(checkpoints):
    wrong = {**TINY_LFM2_MOE, "moe_intermediate_size": 32}
    with pytest.raises(FetchError, match="shape"):
        load_weights(build_decode_graph(wrong, 4), checkpoints["tiny"])


def _arch(**changes):
    return architecture_of({"model_type": "lfm2_moe", **TINY_LFM2_MOE, **changes}, "config.json")


def test_config_reading():
    arch = _arch(layer_types=["conv", "attention", "conv", "attention"])  # the legacy name of full attention
    assert arch.layer_types[1] == "full_attention" and arch.head_dim == 16 and arch.rope_theta == 1e6
    assert _arch(rope_parameters={"rope_theta": 5e6}).rope_theta == 5e6
    absent = {k: v for k, v in TINY_LFM2_MOE.items() if k != "num_experts"}
    # transformers' own default, as the oracle reads it
    assert architecture_of({"model_type": "lfm2_moe", **absent}, "config.json").num_experts == 32
    with pytest.raises(ConfigError, match="num_experts"):
        _arch(num_experts=None)
    with pytest.raises(ConfigError, match="layer-types.0: Input should be .conv. or .full_attention."):
        _arch(layer_types=["mamba"] * 4)
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        _arch(num_hidden_layers=5)
    with pytest.raises(ConfigError, match="num-key-value-heads"):
        _arch(num_key_value_heads=3)
    with pytest.raises((ConfigError, NotImplementedFeatureError), match="dynamic"):
        _arch(rope_parameters={"rope_type": "dynamic", "factor": 4.0, "rope_theta": 1e6})


def test_loading_calls_back_once_per_unit_in_order(checkpoints):
    """The export quantizes each unit as soon as it is loaded; every weight is there by then."""
    graph = build_decode_graph(TINY_LFM2_MOE, 4)
    seen = []

    def on_unit(unit):
        for prefix in unit:
            assert all(not p.is_meta for p in graph.get_submodule(prefix).parameters()), unit
        seen.append(unit)

    load_weights(graph, checkpoints["tiny"], on_unit)
    layers = [(f"layers.{i}",) for i in range(TINY_LFM2_MOE["num_hidden_layers"])]
    # The tiny fixture ties its head: head and embedding are one unit, after the tie.
    assert TINY_LFM2_MOE["tie_word_embeddings"]
    assert seen == [*layers, ("norm",), ("embed_tokens", "lm_head")]
    assert graph.lm_head.weight is graph.embed_tokens.weight
