"""Synthetic checkpoints: the layout of transformers' save_pretrained, loadable, seeded, flat in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT
from llama_configs import TINY as TINY_LLAMA
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from zootool.arch.base import TensorSpec
from zootool.errors import ConfigError
from zootool.fetch.synthetic import generate_checkpoint
from zootool.fetch.synthetic.generate import parse_size
from zootool.fetch.synthetic.safetensors_stream import StoredTensor, write_file
from zootool.fetch.synthetic.weights import SLICE_ELEMENTS, Init, slice_tasks

SRC = Path(__file__).resolve().parents[2] / "src"
CONFIGS = {
    "lfm2_moe": {"model_type": "lfm2_moe", **TINY_LFM2_MOE},
    "lfm2_moe-variant": {"model_type": "lfm2_moe", **TINY_LFM2_MOE_VARIANT},
    **TINY_LLAMA,
}
# swift-transformers' TokenizerModel.knownTokenizers (a "Fast" suffix is dropped before the look-up).
SWIFT_KNOWN_TOKENIZERS = {
    "BertTokenizer", "CodeGenTokenizer", "CodeLlamaTokenizer", "FalconTokenizer", "GemmaTokenizer",
    "GPT2Tokenizer", "LlamaTokenizer", "T5Tokenizer", "WhisperTokenizer", "CohereTokenizer", "PreTrainedTokenizer",
}  # fmt: skip


def _layout(directory: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """name -> (shape, dtype) over every safetensors file of a checkpoint."""
    layout = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            for name in handle.keys():
                tensor = handle.get_tensor(name)
                layout[name] = (tuple(tensor.shape), tensor.dtype)
    return layout


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            tensors |= {name: handle.get_tensor(name) for name in handle.keys()}
    return tensors


def _save_pretrained(directory: Path, config: dict, like: Path) -> Path:
    """transformers' own save of the same config (ids taken from the generated config.json)."""
    settings = {k: v for k, v in config.items() if k != "model_type"}
    generated = json.loads((like / "config.json").read_text())
    ids = {key: generated[key] for key in ("pad_token_id", "bos_token_id", "eos_token_id")}
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **settings, **ids))
    model.to(torch.bfloat16).save_pretrained(directory, max_shard_size="100KB")
    return directory


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_files_names_shapes_and_config_as_save_pretrained(name, tmp_path):
    ours = generate_checkpoint(tmp_path / "ours", CONFIGS[name], seed=0, max_shard_size="100KB")
    theirs = _save_pretrained(tmp_path / "theirs", CONFIGS[name], ours)
    assert _layout(ours) == _layout(theirs)
    # Which shard holds which tensor follows the same rule but not transformers' internal key order.
    index = [json.loads((d / "model.safetensors.index.json").read_text()) for d in (ours, theirs)]
    assert index[0]["metadata"] == index[1]["metadata"]
    assert index[0]["weight_map"].keys() == index[1]["weight_map"].keys()
    assert set(index[0]["weight_map"].values()) == {p.name for p in ours.glob("model-*.safetensors")}
    assert json.loads((ours / "config.json").read_text()) == json.loads((theirs / "config.json").read_text())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_transformers_and_the_zoo_loaders_read_it(name, tmp_path):
    directory = generate_checkpoint(tmp_path / name, CONFIGS[name], seed=3, max_shard_size="200KB")
    model, info = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    ids = torch.arange(1, 13)
    with torch.no_grad():
        want = model.eval()(ids[None]).logits[0]
    assert torch.isfinite(want).all() and want.std() > 0
    got = _zoo_decode(directory, ids.tolist())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _zoo_decode(directory: Path, ids: list[int]) -> torch.Tensor:
    from graphs import loaded_graph

    from zootool.arch.decode_graph import decode_tokens

    return decode_tokens(loaded_graph(directory, 16), ids, 4)


def test_values_follow_the_init_rules(tmp_path):
    std = 0.1
    directory = generate_checkpoint(tmp_path / "c", {**CONFIGS["llama"], "initializer_range": std}, seed=0)
    tensors = {n: t.float() for n, t in _tensors(directory).items()}
    pad = json.loads((directory / "config.json").read_text())["pad_token_id"]
    embedding = tensors.pop("model.embed_tokens.weight")
    assert not embedding[pad].any() and embedding.std() == pytest.approx(std, rel=0.05)
    norms = [t for n, t in tensors.items() if n.endswith("norm.weight")]
    assert len(norms) == 2 * 3 + 1
    assert torch.cat(norms).mean() == pytest.approx(1.0, abs=0.02) and torch.cat(norms).std() > 0.05
    biases = [t for n, t in tensors.items() if n.endswith(".bias")]
    assert biases and not any(t.any() for t in biases)  # zero, like transformers' init
    matrices = torch.cat([t.flatten() for n, t in tensors.items() if t.dim() == 2])
    assert matrices.mean() == pytest.approx(0.0, abs=0.01) and matrices.std() == pytest.approx(std, rel=0.05)


def test_expert_bias_is_randomised(tmp_path):
    tensors = _tensors(generate_checkpoint(tmp_path / "c", CONFIGS["lfm2_moe"], seed=0))
    biases = [t for n, t in tensors.items() if n.endswith("expert_bias")]
    assert len(biases) == 3 and all(t.abs().min() > 0 for t in biases)


def test_bytes_depend_on_the_seed_not_on_sharding(tmp_path):
    whole = generate_checkpoint(tmp_path / "whole", CONFIGS["lfm2_moe"], seed=4)
    sharded = generate_checkpoint(tmp_path / "sharded", CONFIGS["lfm2_moe"], seed=4, max_shard_size="50KB")
    other = generate_checkpoint(tmp_path / "other", CONFIGS["lfm2_moe"], seed=5)
    a, b, c = _tensors(whole), _tensors(sharded), _tensors(other)
    assert len(list(sharded.glob("model-*.safetensors"))) > 5
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    expert = "model.layers.1.feed_forward.experts.0.w1.weight"
    assert not torch.equal(a[expert], c[expert])


def test_a_huge_tensor_comes_in_bounded_slices():
    spec = TensorSpec("model.embed_tokens.weight", "embedding", (128_000, 2048))
    rows_per_slice = SLICE_ELEMENTS // 2048
    pad_row = rows_per_slice + 7  # in the second slice
    tasks = slice_tasks(spec, Init(0.0, 0.02, zero_row=pad_row), seed=0, dtype="bfloat16")
    first, second = (task() for task in islice(tasks, 2))
    assert first.shape == second.shape == (SLICE_ELEMENTS,) and first.dtype == torch.bfloat16
    rows = second.reshape(-1, 2048)
    assert not rows[7].any() and rows[6].any() and rows[8].any() and first.all()
    assert sum(1 for _ in tasks) + 2 == -(-128_000 * 2048 // SLICE_ELEMENTS)


def test_a_miscounted_stream_is_refused(tmp_path):
    tensors = [StoredTensor("a", (4,), "float32"), StoredTensor("b", (2,), "float32")]
    with pytest.raises(ValueError, match="runs 8 bytes into the next tensor"):
        write_file(tmp_path / "x.safetensors", tensors, iter([torch.zeros(6)]))
    with pytest.raises(ValueError, match="data ended"):
        write_file(tmp_path / "x.safetensors", tensors, iter([torch.zeros(4)]))


def test_tokenizer_files_for_swift_transformers_and_the_chat_template(tmp_path):
    directory = generate_checkpoint(tmp_path / "c", CONFIGS["qwen3"], seed=0)
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    assert settings["tokenizer_class"].replace("Fast", "") in SWIFT_KNOWN_TOKENIZERS
    assert (directory / "chat_template.jinja").read_text() == settings["chat_template"]
    generation = json.loads((directory / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    eos = tokenizer.convert_tokens_to_ids(settings["eos_token"])
    assert generation["eos_token_id"] == tokenizer.eos_token_id == eos
    turns = [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "?"},
    ]
    ids = tokenizer.apply_chat_template(turns, tokenize=True, add_generation_prompt=False, return_dict=False)
    ends = [i for i, token in enumerate(ids) if token == tokenizer.eos_token_id]
    assert len(ends) == len(turns)
    text = tokenizer.decode(ids)
    assert all(f"{t['content']}{tokenizer.eos_token}" in text for t in turns)


@pytest.mark.parametrize(("size", "expected"), [("5GB", 5 * 10**9), ("200KB", 200_000), ("1GiB", 2**30), (7, 7)])
def test_shard_sizes(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["", "-1KB", "5 parsecs", 0])
def test_bad_shard_size_is_a_config_error(size):
    with pytest.raises(ConfigError, match="shard size"):
        parse_size(size)


def test_config_without_model_type_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model_type"):
        generate_checkpoint(tmp_path / "x", TINY_LFM2_MOE, seed=0)
    assert not list(tmp_path.iterdir())


_CHILD = """
import sys
from zootool.fetch.synthetic import generate_checkpoint
hidden = int(sys.argv[2])
config = {
    "model_type": "lfm2_moe", "vocab_size": 4096, "hidden_size": hidden, "num_hidden_layers": 4,
    "layer_types": ["conv", "full_attention", "conv", "full_attention"], "num_dense_layers": 1,
    "intermediate_size": 2 * hidden, "num_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": hidden, "num_attention_heads": hidden // 64, "num_key_value_heads": hidden // 128,
}
generate_checkpoint(sys.argv[1], config, 0)  # one shard: holding it would show
"""


def _generate_in_child(directory: Path, hidden: int) -> tuple[int, int]:
    """(peak RSS in bytes of a child process generating the model, bytes of its safetensors files)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-c", _CHILD, str(directory), str(hidden)]
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, child.stderr.read().decode()[-2000:]
    child.stderr.close()
    return usage.ru_maxrss * 1024, sum(p.stat().st_size for p in directory.glob("*.safetensors"))


def test_peak_memory_does_not_grow_with_model_size(tmp_path):
    small_rss, small_bytes = _generate_in_child(tmp_path / "small", 768)
    large_rss, large_bytes = _generate_in_child(tmp_path / "large", 1536)
    assert large_bytes > 3.5 * small_bytes
    # Holding the model (or one shard) in memory would grow RSS by at least the extra bytes.
    assert large_rss - small_rss < 0.2 * (large_bytes - small_bytes), (small_rss, large_rss)
