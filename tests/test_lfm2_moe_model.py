"""The export-friendly LFM2-MoE decode step against transformers' Lfm2MoeForCausalLM."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import torch
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import Lfm2MoeForCausalLM

from zootool.arch.lfm2_moe_layers import _IndexSelectGatherMM
from zootool.arch.lfm2_moe_model import (
    GatherExpertMatmul,
    Lfm2MoeDims,
    build_decode_chunks,
    decode_tokens,
    load_weights,
    replace_expert_matmul,
    split_layers,
)
from zootool.checkpoint import generate_tiny_checkpoint
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


def _loaded(directory: Path, chunks: int = 1, dtype: torch.dtype = torch.float32) -> list[torch.nn.Module]:
    modules = build_decode_chunks(json.loads((directory / "config.json").read_text()), MAX_CONTEXT, chunks, dtype)
    load_weights(modules, directory)
    return modules


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_decode_steps_match_transformers(name, checkpoints, oracle):
    ids, want = oracle[name]
    got = decode_tokens(_loaded(checkpoints[name]), ids)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize(("name", "chunks"), [("tiny", 2), ("tiny", 4), ("variant", 3)])
def test_chunked_decoder_gives_identical_logits(name, chunks, checkpoints, oracle):
    ids, _ = oracle[name]
    whole = decode_tokens(_loaded(checkpoints[name]), ids)
    assert torch.equal(decode_tokens(_loaded(checkpoints[name], chunks), ids), whole)


def test_chunk_interfaces_partition_the_decoder(checkpoints):
    first, middle, last = _loaded(checkpoints["variant"], chunks=3)
    assert [list(c.layer_range) for c in (first, middle, last)] == [[0, 1], [2, 3], [4]]
    assert first.input_names()[:2] == ["input_ids", "position"] and first.output_names()[0] == "hidden_states"
    assert middle.input_names()[0] == "hidden_states" and last.output_names()[0] == "logits"
    assert first.input_names()[2:] == ["layer0_key", "layer0_value", "layer1_conv"]
    hidden, *_ = middle(*middle.example_inputs())
    assert hidden.shape == (1, 1, 64)
    logits, *states = last(*last.example_inputs())
    assert logits.shape == (1, 1, 320) and [s.shape for s in states] == [(1, 64, 4)]
    assert not hasattr(middle, "embed_tokens") and not hasattr(middle, "lm_head")


def test_cache_rows_after_position_are_ignored(checkpoints):
    (chunk,) = _loaded(checkpoints["tiny"])
    ids, position, *states = chunk.example_inputs()
    ids[0, 0], position[0] = 11, 3
    noisy = [s.clone() for s in states]
    for spec, state in zip(chunk.state_specs(), noisy, strict=True):
        if spec.name.endswith(("key", "value")):
            state[:, :, 4:] = torch.randn_like(state[:, :, 4:]) * 100
    with torch.no_grad():
        clean_out, *_ = chunk(ids, position, *states)
        noisy_out, *noisy_states = chunk(ids, position, *noisy)
    assert torch.equal(clean_out, noisy_out)
    key = noisy_states[[spec.name for spec in chunk.state_specs()].index("layer1_key")]
    assert key[:, :, :3].abs().max() == 0 and key[:, :, 3].abs().max() > 0


def test_decode_step_exports_and_matches_eager(checkpoints):
    for chunk in _loaded(checkpoints["variant"], chunks=3):
        inputs = chunk.example_inputs()
        if chunk.is_first:
            inputs = (torch.tensor([[5]], dtype=torch.int32), *inputs[1:])
        else:
            inputs = (torch.randn(inputs[0].shape), *inputs[1:])
        program = torch.export.export(chunk, inputs)
        targets = {str(node.target) for node in program.graph.nodes}
        assert not any(op in t for t in targets for op in ("histc", "nonzero", "index_put", "empty_permuted"))
        with torch.no_grad():
            for got, want in zip(program.module()(*inputs), chunk(*inputs), strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


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
    chunks = _loaded(checkpoints["tiny"], chunks=2)
    assert replace_expert_matmul(chunks, _DenseAllExperts) == 3  # layers 1..3 are sparse
    assert not any(isinstance(m, GatherExpertMatmul) for chunk in chunks for m in chunk.modules())
    got = decode_tokens(chunks, ids[:4])
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
        chunks = build_decode_chunks(config, MAX_CONTEXT)
    load_weights(chunks, checkpoints["tiny"])
    assert not any(t.is_meta for t in chunks[0].state_dict().values())
    ids, want = oracle["tiny"]
    torch.testing.assert_close(decode_tokens(chunks, ids), want, rtol=1e-4, atol=1e-5)


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
        load_weights(build_decode_chunks(TINY_LFM2_MOE, 4), tmp_path / "nowhere")


def test_config_checkpoint_mismatch_raises_fetch_error(checkpoints):
    wrong = {**TINY_LFM2_MOE, "moe_intermediate_size": 32}
    with pytest.raises(FetchError, match="shape"):
        load_weights(build_decode_chunks(wrong, 4), checkpoints["tiny"])


def test_config_reading():
    dims = Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "layer_types": ["conv", "attention", "conv", "attention"]})
    assert dims.layer_types[1] == "full_attention" and dims.head_dim == 16 and dims.rope_theta == 1e6
    assert Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "rope_parameters": {"rope_theta": 5e6}}).rope_theta == 5e6
    with pytest.raises(ConfigError, match="num_experts"):
        Lfm2MoeDims.from_config({k: v for k, v in TINY_LFM2_MOE.items() if k != "num_experts"})
    with pytest.raises(ConfigError, match="mamba"):
        Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "layer_types": ["mamba"] * 4})
    with pytest.raises(ConfigError, match="num_hidden_layers 5"):
        Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "num_hidden_layers": 5})
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "num_key_value_heads": 3})
    with pytest.raises(NotImplementedFeatureError, match="yarn"):
        Lfm2MoeDims.from_config({**TINY_LFM2_MOE, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}})


def test_split_layers():
    assert split_layers(24, 1) == [range(0, 24)]
    assert split_layers(24, 5) == [range(0, 5), range(5, 10), range(10, 15), range(15, 20), range(20, 24)]
    with pytest.raises(ConfigError):
        split_layers(4, 5)


def test_converts_to_coreai_and_runs_on_cpu(checkpoints, oracle, tmp_path):
    pytest.importorskip("coreai_torch")
    import numpy as np
    from coreai.runtime import NDArray
    from coreai_torch import TorchConverter, get_decomp_table
    from coreai_torch.composite_ops import GatherMM

    (chunk,) = _loaded(checkpoints["tiny"])
    example = chunk.example_inputs()
    program = TorchConverter().add_pytorch_module(
        chunk,
        export_fn=lambda m: torch.export.export(m, example).run_decompositions(get_decomp_table()),
        externalize_modules=[GatherMM],
        input_names=chunk.input_names(),
        output_names=chunk.output_names(),
    )
    asset = program.to_coreai().save_asset(tmp_path / "tiny.aimodel")
    assert sum("gather_mm" in name for name in asset.summary().function_names) == 6

    async def run(ids: list[int]) -> np.ndarray:
        states = [s.numpy() for s in chunk.initial_states()]
        rows = []
        async with asset.executable() as model:
            step = model.load_function("main")
            for position, token in enumerate(ids):
                feed = {"input_ids": np.array([[token]], np.int32), "position": np.array([position], np.int32)}
                feed.update({spec.name: state for spec, state in zip(chunk.state_specs(), states, strict=True)})
                out = await step({k: NDArray(v) for k, v in feed.items()})
                rows.append(out["logits"].numpy().reshape(-1).copy())
                states = [out[f"{spec.name}_out"].numpy().copy() for spec in chunk.state_specs()]
        return np.stack(rows)

    ids, want = oracle["tiny"]
    torch.testing.assert_close(torch.from_numpy(asyncio.run(run(ids))), want, rtol=1e-4, atol=1e-5)
