"""The export-friendly Llama-family decode graph against transformers (llama, qwen3, mistral)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from llama_configs import TINY
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from graphs import build_decode_graph, load_weights

from zootool.arch.decode_graph import decode_tokens
from zootool.arch.registry import architecture_of
from zootool.fetch.checkpoint import generate_tiny_checkpoint
from zootool.errors import ConfigError, FetchError, NotImplementedFeatureError

STEPS = 12
MAX_CONTEXT = 16


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llama")
    return {name: generate_tiny_checkpoint(root / name, config, seed=11) for name, config in TINY.items()}


@pytest.fixture(scope="module")
def oracle(checkpoints: dict[str, Path]) -> dict[str, tuple[list[int], torch.Tensor]]:
    """Token ids and transformers' full-sequence fp32 logits, per config."""
    results = {}
    for name, directory in checkpoints.items():
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        ids = torch.randint(0, model.config.vocab_size, (STEPS,), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            results[name] = (ids.tolist(), model(ids[None]).logits[0])
    return results


def _config(directory: Path) -> dict:
    return json.loads((directory / "config.json").read_text())


def _loaded(directory: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    graph = build_decode_graph(_config(directory), MAX_CONTEXT, dtype)
    load_weights(graph, directory)
    return graph.eval()


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("step", [1, 5, STEPS])
def test_decode_steps_match_transformers(name, step, checkpoints, oracle):
    ids, expected = oracle[name]
    actual = decode_tokens(_loaded(checkpoints[name]), ids, step)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_generated_configs_are_the_upstream_model_types(checkpoints):
    for name, directory in checkpoints.items():
        config = _config(directory)
        assert config["model_type"] == name
        assert (architecture_of(config, name).attention(0).qk_norm == "head") == (name == "qwen3")
    assert _config(checkpoints["mistral"])["sliding_window"] == 5 < STEPS  # the window really cuts in


def test_fp16_module_stays_close(checkpoints, oracle):
    ids, expected = oracle["qwen3"]
    actual = decode_tokens(_loaded(checkpoints["qwen3"], dtype=torch.float16), ids).float()
    assert (actual.argmax(-1) == expected.argmax(-1)).float().mean() > 0.9
    assert (actual - expected).abs().max() < 0.05


def test_sharded_checkpoint_loads(checkpoints, oracle, tmp_path):
    sharded = generate_tiny_checkpoint(tmp_path / "sharded", TINY["llama"], seed=11, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    ids, expected = oracle["llama"]
    assert torch.allclose(decode_tokens(_loaded(sharded), ids), expected, atol=1e-4)


def test_meta_build_then_load(checkpoints):
    with torch.device("meta"):
        module = build_decode_graph(_config(checkpoints["llama"]), MAX_CONTEXT)
    load_weights(module, checkpoints["llama"])
    assert all(not p.is_meta for p in module.parameters())
    assert module.rotary.inv_freq_default.dtype == torch.float32 and not module.rotary.inv_freq_default.is_meta


def test_interface_names_and_shapes(checkpoints):
    graph = build_decode_graph(_config(checkpoints["qwen3"]), MAX_CONTEXT)
    assert graph.input_names == ["input_ids", "position_ids"] and graph.output_names == ["logits"]
    assert [(spec.name, spec.shape) for spec in graph.state_specs()] == [
        ("keyCache", (3, 1, 1, -1, 32)), ("valueCache", (3, 1, 1, -1, 32)),
    ]


def test_torch_export_takes_the_graph_with_states_in_place(checkpoints):
    import torch.fx.experimental._config as fx_config

    module = _loaded(checkpoints["mistral"])
    inputs = module.example_inputs(None)
    inputs[0].copy_(torch.tensor([[3, 4, 5]]))  # the example's zeros are the pad token, whose embedding is 0
    with fx_config.patch(backed_size_oblivious=True):
        program = torch.export.export(module, inputs, dynamic_shapes=module.dynamic_shapes(None))
    assert len(program.graph_signature.user_outputs) == 1  # logits only: the states are written in place
    with torch.no_grad():
        program.module()(*inputs)
    keys = inputs[2]
    assert keys[:, :, :, :2].abs().max() == 0 and keys[:, :, :, 2:5].abs().max() > 0  # rows past..past+q


def test_mismatching_tensor_is_a_fetch_error(checkpoints, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((checkpoints["llama"] / "config.json").read_text())
    tensors = load_file(checkpoints["llama"] / "model.safetensors")
    tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][:, :8].contiguous()
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(FetchError, match=r"layers\.1\.mlp\.up_proj\.weight has shape \(128, 8\)"):
        _loaded(broken)


@pytest.mark.parametrize("changes,error,message", [
    ({"hidden_act": "gelu"}, ConfigError, "hidden-act: Input should be 'silu' or 'gelu_pytorch_tanh' .got 'gelu'."),
    ({"model_type": "gpt2"}, NotImplementedFeatureError, "'gpt2' is not a family this zoo builds yet"),
    ({"num_key_value_heads": 3}, ConfigError, "num-key-value-heads: 3 does not divide"),
    ({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}}, NotImplementedFeatureError,
     "'dynamic'"),
])  # fmt: skip
def test_unsupported_configs_are_refused(changes, error, message):
    with pytest.raises(error, match=message):
        build_decode_graph({**TINY["llama"], **changes}, MAX_CONTEXT)


def test_norm_survives_fp16_outliers():
    """Squares of outlier activations overflow fp16; the norm must not (converters compute it in fp16)."""
    from zootool.arch.blocks.norm import RMSNorm

    norm = RMSNorm(64, 1e-6).half()
    x = torch.randn(1, 1, 64)
    x[..., 3] = 3000.0
    # Emulate a converter that drops the fp32 cast: run the arithmetic in fp16 throughout.
    original_to = torch.Tensor.to
    try:
        torch.Tensor.to = lambda self, *a, **k: self if a and a[0] is torch.float32 else original_to(self, *a, **k)
        out = norm(x.half())
    finally:
        torch.Tensor.to = original_to
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.isfinite(out).all() and torch.allclose(out.float(), expected, atol=2e-3)
