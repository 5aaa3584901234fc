"""The tiny LFM2-MoE checkpoint generator: real, loadable, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer, Lfm2MoeForCausalLM

from zootool.fetch.checkpoint import generate_tiny_checkpoint
from zootool.errors import ConfigError

TEXTS = [
    "The keepers count the animals every morning.",
    "Ünïcödé, emoji 🦒 and tabs\tsurvive: 12 × 12 = 144!",
    "  leading spaces and\nnew lines\n",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", TINY_LFM2_MOE, seed=0)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def test_writes_the_files_of_a_hub_snapshot(tiny):
    names = {p.name for p in tiny.iterdir()}
    expected = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert expected <= names
    assert not [n for n in names if n.startswith(".")]
    config = json.loads((tiny / "config.json").read_text())
    assert config["model_type"] == "lfm2_moe" and config["architectures"] == ["Lfm2MoeForCausalLM"]
    assert config["layer_types"] == TINY_LFM2_MOE["layer_types"] and config["dtype"] == "float32"


def test_same_seed_same_bytes_other_seed_other_weights(tiny, tmp_path):
    again = generate_tiny_checkpoint(tmp_path / "again", TINY_LFM2_MOE, seed=0)
    for path in tiny.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    other = generate_tiny_checkpoint(tmp_path / "other", TINY_LFM2_MOE, seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (tiny / "tokenizer.json").read_bytes()


def test_does_not_disturb_the_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_tiny_checkpoint(tmp_path / "rng", TINY_LFM2_MOE, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_transformers_loads_it_completely(tiny):
    model, info = Lfm2MoeForCausalLM.from_pretrained(tiny, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert AutoConfig.from_pretrained(tiny).num_experts == TINY_LFM2_MOE["num_experts"]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_tensor_names_follow_the_hub_layout(tiny):
    tensors = _tensors(tiny / "model.safetensors")
    assert "lm_head.weight" not in tensors  # tied
    assert tensors["model.layers.1.feed_forward.experts.7.w1.weight"].shape == (64, 64)
    assert tensors["model.layers.1.feed_forward.experts.7.w2.weight"].shape == (64, 64)
    assert "model.layers.0.feed_forward.w1.weight" in tensors  # the dense layer
    assert tensors["model.layers.0.conv.conv.weight"].shape == (64, 1, 3)
    assert all(t.dtype == torch.float32 for t in tensors.values())


def test_norms_and_expert_bias_are_randomised(tiny):
    tensors = _tensors(tiny / "model.safetensors")
    norms = [t for n, t in tensors.items() if n.endswith("norm.weight")]
    assert len(norms) == 2 * 4 + 1 + 2 * 2
    assert all(not torch.allclose(t, torch.ones_like(t)) for t in norms)
    biases = [t for n, t in tensors.items() if n.endswith("expert_bias")]
    assert len(biases) == 3 and all(t.abs().min() > 0 for t in biases)


def test_bfloat16_weights(tmp_path):
    directory = generate_tiny_checkpoint(tmp_path / "bf16", TINY_LFM2_MOE_VARIANT, seed=0, dtype="bfloat16")
    tensors = _tensors(directory / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert "lm_head.weight" in tensors  # untied in the variant
    assert json.loads((directory / "config.json").read_text())["dtype"] == "bfloat16"


def test_tokenizer_loads_and_round_trips(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert len(tokenizer) == TINY_LFM2_MOE["vocab_size"]
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and max(ids) < TINY_LFM2_MOE["vocab_size"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(tokenizer("The keepers count the animals")["input_ids"]) < len("The keepers count the animals") // 2


def test_special_tokens_agree_with_config_and_chat_template(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = json.loads((tiny / "config.json").read_text())
    generation = json.loads((tiny / "generation_config.json").read_text())
    ids = (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert ids == (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"])
    assert (generation["bos_token_id"], generation["eos_token_id"]) == ids[1:]
    messages = [{"role": "user", "content": "Hi"}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert chat == "<|startoftext|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == tokenizer.eos_token_id


def test_other_vocab_sizes_are_exact(tmp_path):
    directory = generate_tiny_checkpoint(tmp_path / "variant", TINY_LFM2_MOE_VARIANT, seed=0)
    assert len(AutoTokenizer.from_pretrained(directory)) == TINY_LFM2_MOE_VARIANT["vocab_size"]


def test_replaces_its_own_output_but_not_foreign_files(tiny, tmp_path):
    target = tmp_path / "reuse"
    generate_tiny_checkpoint(target, TINY_LFM2_MOE, seed=0)
    generate_tiny_checkpoint(target, TINY_LFM2_MOE, seed=2)
    assert (target / "model.safetensors").read_bytes() != (tiny / "model.safetensors").read_bytes()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        generate_tiny_checkpoint(target, TINY_LFM2_MOE, seed=0)
    assert (target / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "change",
    [{"vocab_size": 100}, {"layer_types": ["conv", "bogus", "conv", "full_attention"]}, {"num_hidden_layers": 3}],
)
def test_bad_config_raises_config_error(tmp_path, change):
    with pytest.raises(ConfigError):
        generate_tiny_checkpoint(tmp_path / "bad", {**TINY_LFM2_MOE, **change}, seed=0)
    assert not (tmp_path / "bad").exists()
    assert not list(tmp_path.iterdir())


def test_unknown_dtype_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="float8"):
        generate_tiny_checkpoint(tmp_path / "x", TINY_LFM2_MOE, seed=0, dtype="float8")
