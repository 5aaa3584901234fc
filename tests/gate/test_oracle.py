"""The streamed fp32 oracle against transformers' whole-model fp32 logits, and its memory bound."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from arch_fixtures import ARCHITECTURES  # noqa: E402
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT
from llama_configs import TINY
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from zootool.gate import oracle
from zootool.fetch.checkpoint import generate_tiny_checkpoint
from zootool.errors import ConfigError, FetchError, NotImplementedFeatureError
from zootool.gate.margin import OracleRow
from zootool.gate.oracle import streaming_logits, streaming_top_k

TOKENS = 60  # past every sliding window of the architecture fixtures
CONFIGS = {"lfm2_moe": TINY_LFM2_MOE, "lfm2_moe_variant": TINY_LFM2_MOE_VARIANT, **TINY}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("oracle")
    made = {name: generate_tiny_checkpoint(root / name, config, seed=5) for name, config in CONFIGS.items()}
    made["lfm2_moe_bf16"] = generate_tiny_checkpoint(root / "bf16", TINY_LFM2_MOE, seed=5, dtype="bfloat16")
    made["llama_sharded"] = generate_tiny_checkpoint(root / "sharded", TINY["llama"], seed=5, max_shard_size="100KB")
    return made


def _token_ids(directory: Path, count: int = TOKENS) -> list[int]:
    vocab = json.loads((directory / "config.json").read_text())["vocab_size"]
    return torch.randint(0, vocab, (count,), generator=torch.Generator().manual_seed(1)).tolist()


def _transformers_logits(directory: Path, ids: list[int]) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


@pytest.mark.parametrize("name", [*CONFIGS, "lfm2_moe_bf16", "llama_sharded"])
def test_logits_match_transformers_whole_model(name, checkpoints):
    ids = _token_ids(checkpoints[name])
    want = _transformers_logits(checkpoints[name], ids)
    got = streaming_logits(checkpoints[name], ids)
    vocab = json.loads((checkpoints[name] / "config.json").read_text())["vocab_size"]
    assert got.shape == want.shape == (TOKENS, vocab)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    assert (got.argmax(-1) == want.argmax(-1)).all()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_family_streams_as_transformers_runs_it(name, arch_checkpoint):
    """Gemma's scaled embedding and soft-capped logits, Phi-3's fused projections, routed experts...:
    the oracle runs each family's own transformers class, one layer at a time."""
    checkpoint = arch_checkpoint(name)
    ids = _token_ids(checkpoint)
    np.testing.assert_allclose(streaming_logits(checkpoint, ids), _transformers_logits(checkpoint, ids), atol=1e-4)


def test_generated_checkpoints_exercise_every_path(checkpoints):
    """Per-expert Hub names, a window shorter than the sequence, bf16 storage: the paths above really run."""
    with safe_open(checkpoints["lfm2_moe"] / "model.safetensors", "pt") as handle:
        names = set(handle.keys())
        assert "model.layers.1.feed_forward.experts.0.w1.weight" in names
        assert not any(name.endswith("gate_up_proj") for name in names)
    with safe_open(checkpoints["lfm2_moe_bf16"] / "model.safetensors", "pt") as handle:
        assert handle.get_tensor("model.layers.0.conv.in_proj.weight").dtype == torch.bfloat16
    assert json.loads((checkpoints["mistral"] / "config.json").read_text())["sliding_window"] < TOKENS
    assert len(list(checkpoints["llama_sharded"].glob("model-*.safetensors"))) > 1


def test_stacked_expert_layout_loads_too(tmp_path, checkpoints):
    source = checkpoints["lfm2_moe"]
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert "model.layers.1.feed_forward.experts.gate_up_proj" in tensors
    (tmp_path / "stacked").mkdir()
    shutil.copy(source / "config.json", tmp_path / "stacked")
    save_file(tensors, tmp_path / "stacked" / "model.safetensors")
    ids = _token_ids(source)
    assert np.abs(streaming_logits(tmp_path / "stacked", ids) - _transformers_logits(source, ids)).max() < 1e-4


@pytest.mark.parametrize("block_rows", [512, 100, 7])
def test_top_k_rows_are_the_gate_rows_of_the_full_logits(block_rows, monkeypatch, checkpoints):
    directory = checkpoints["lfm2_moe_variant"]  # untied head
    ids = _token_ids(directory, 20)
    full = streaming_logits(directory, ids)
    monkeypatch.setattr(oracle, "HEAD_BLOCK_ROWS", block_rows)
    # A narrower block may change the matmul's blocking, so the last fp32 bit may differ.
    assert np.allclose(streaming_logits(directory, ids), full, rtol=1e-6, atol=1e-6)
    rows = streaming_top_k(directory, ids, 32)
    expected = [OracleRow.from_logits(row.tolist(), 32) for row in full]
    assert [row.tokens for row in rows] == [row.tokens for row in expected]
    assert np.allclose([row.logits for row in rows], [row.logits for row in expected], rtol=1e-6, atol=1e-6)
    assert len(rows) == 20 and all(len(row.tokens) == 32 for row in rows)


def test_top_k_wider_than_the_vocabulary_keeps_every_token(checkpoints):
    rows = streaming_top_k(checkpoints["qwen3"], [3, 4], 10_000)
    assert [sorted(row.tokens) for row in rows] == [list(range(512))] * 2


class _MaterialisedWeights:
    """Global module hooks: after every module call, how much of the model is off the meta device."""

    def __init__(self) -> None:
        self.base: torch.nn.Module | None = None
        self.samples: list[tuple[list[int], int, bool]] = []  # (layers with real weights, real numel, embedding real)

    def before(self, module, args):
        if self.base is None and isinstance(getattr(module, "layers", None), torch.nn.ModuleList):
            self.base = module

    def after(self, module, args, output):
        if self.base is None:
            return
        layers = [i for i, layer in enumerate(self.base.layers) if any(not p.is_meta for p in layer.parameters())]
        real = sum(p.numel() for p in self.base.parameters() if not p.is_meta)
        self.samples.append((layers, real, not self.base.get_input_embeddings().weight.is_meta))


@pytest.mark.parametrize("name", ["lfm2_moe", "llama"])
def test_at_most_one_decoder_layer_is_materialised_at_a_time(name, checkpoints):
    directory = checkpoints[name]
    reference = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).model
    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in reference.layers]
    outside = sum(p.numel() for p in reference.parameters()) - sum(per_layer)
    outside -= reference.get_input_embeddings().weight.numel()
    watch = _MaterialisedWeights()
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(watch.before),
             torch.nn.modules.module.register_module_forward_hook(watch.after)]  # fmt: skip
    try:
        streaming_logits(directory, _token_ids(directory))
    finally:
        for hook in hooks:
            hook.remove()
    assert watch.samples, "the oracle ran no transformers module"
    assert all(len(layers) <= 1 for layers, _, _ in watch.samples)
    assert sorted({layers[0] for layers, _, _ in watch.samples if layers}) == list(range(len(per_layer)))
    assert max(real for _, real, _ in watch.samples) <= max(per_layer) + outside
    assert not any(embedding for _, _, embedding in watch.samples)
    assert all(p.is_meta for p in watch.base.layers.parameters())


_PEAK_RSS = """
import sys, torch
from pathlib import Path
from transformers import AutoModelForCausalLM
from zootool.gate.oracle import streaming_logits

def status(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024

def run(directory, mode):
    ids = list(range(2, 82))
    if mode == "streamed":
        return streaming_logits(directory, ids)
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)(torch.tensor([ids])).logits

directory, warm_up, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
torch.set_num_threads(2)
run(warm_up, mode)  # transformers imports its model code lazily, on the first model built
Path("/proc/self/clear_refs").write_text("5")  # the peak RSS counts from here on
start = status("VmRSS")
run(directory, mode)
print(status("VmHWM") - start)
"""


def _peak_rss_growth(directory: Path, warm_up: Path, mode: str) -> int:
    """How far the peak resident memory of a fresh process rises while running ``directory``'s model,
    after a first run of the small ``warm_up`` model has done the imports."""
    src = Path(oracle.__file__).resolve().parents[2]
    command = [sys.executable, "-c", _PEAK_RSS, str(directory), str(warm_up), mode]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def test_peak_memory_is_about_one_layer_not_the_whole_model(tmp_path, checkpoints):
    config = {**TINY["llama"], "hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 16,
              "num_attention_heads": 8, "num_key_value_heads": 4}  # fmt: skip
    directory = generate_tiny_checkpoint(tmp_path / "medium", config, seed=2)
    weights = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    assert weights > 200e6  # fp32: 16 layers of ~13.6 MB each
    whole, streamed = (_peak_rss_growth(directory, checkpoints["llama"], mode) for mode in ("whole", "streamed"))
    assert whole > 0.8 * weights  # the measure sees the whole model holding every weight
    assert streamed < 0.25 * weights, (whole, streamed, weights)  # the oracle: one 13.6 MB layer and activations


def test_unknown_model_type_is_not_implemented(tmp_path, checkpoints):
    directory = tmp_path / "gpt2"
    shutil.copytree(checkpoints["llama"], directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(NotImplementedFeatureError, match="gpt2") as info:
        streaming_logits(directory, [1, 2])
    assert info.value.exit_code == 11 and "lfm2_moe" in info.value.hint


def test_missing_config_is_a_fetch_error(tmp_path):
    with pytest.raises(FetchError, match="config.json") as info:
        streaming_logits(tmp_path, [1])
    assert info.value.exit_code == 9 and info.value.hint


def _copy_changing(source: Path, target: Path, change) -> Path:
    target.mkdir()
    shutil.copy(source / "config.json", target)
    with safe_open(source / "model.safetensors", "pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    change(tensors)
    save_file(tensors, target / "model.safetensors")
    return target


@pytest.mark.parametrize(
    ("dropped", "named"),
    [("model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight"),
     ("model.layers.2.feed_forward.experts.5.w3.weight", "model.layers.2.feed_forward.experts.gate_up_proj"),
     ("model.embedding_norm.weight", "model.embedding_norm.weight"),
     ("model.embed_tokens.weight", "model.embed_tokens.weight")],
)  # fmt: skip
def test_missing_tensor_is_a_fetch_error_naming_it(dropped, named, tmp_path, checkpoints):
    broken = _copy_changing(checkpoints["lfm2_moe"], tmp_path / "broken", lambda t: t.pop(dropped))
    with pytest.raises(FetchError, match=named.replace(".", r"\.")) as info:
        streaming_logits(broken, [1, 2, 3])
    assert info.value.exit_code == 9 and info.value.hint


def test_misshapen_tensor_is_a_fetch_error_with_both_shapes(tmp_path, checkpoints):
    name = "model.layers.1.mlp.down_proj.weight"
    def narrow(tensors):
        tensors[name] = tensors[name][:, :100].contiguous()

    broken = _copy_changing(checkpoints["llama"], tmp_path / "broken", narrow)
    with pytest.raises(FetchError, match=r"down_proj\.weight has shape \(64, 100\), the config implies \(64, 128\)"):
        streaming_logits(broken, [1, 2, 3])


@pytest.mark.parametrize("ids", [[], [0, 512], [-1]])
def test_token_ids_outside_the_vocabulary_are_refused(ids, checkpoints):
    with pytest.raises(ConfigError):
        streaming_logits(checkpoints["qwen3"], ids)


def test_top_k_below_one_is_refused(checkpoints):
    with pytest.raises(ConfigError, match="at least 1"):
        streaming_top_k(checkpoints["qwen3"], [1], 0)


def test_threads_are_restored(checkpoints):
    before = torch.get_num_threads()
    streaming_logits(checkpoints["qwen3"], [1, 2], threads=1)
    assert torch.get_num_threads() == before
