"""Core AI backend: real conversions of a tiny MoE, storage types, the CPU runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from zootool.backends.coreai import export as backend  # noqa: E402
from zootool.backends.coreai.quant import (
    BlockQuantExperts, BlockQuantLinear, ExpertMatmul, PalettizedExperts, kmeans_rows, quantize_symmetric,
    tensor_group,
)
from zootool.backends.coreai.runtime import AimodelSession  # noqa: E402
from zootool.errors import BackendFailedError, BackendUnavailableError, ConfigError  # noqa: E402
from zootool.config.zoo_data import QuantSpec, Scheme  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
HIDDEN, VOCAB, EXPERTS, TOP_K, INTER = 64, 96, 4, 2, 64


class Experts(nn.Module):
    """An experts host as the LFM2 export module has one: stacked weights + ``matmul``."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Parameter(torch.randn(EXPERTS, INTER, HIDDEN) / 8)
        self.down = nn.Parameter(torch.randn(EXPERTS, HIDDEN, INTER) / 8)
        self.matmul = ExpertMatmul()

    def forward(self, x, indices, weights):
        hidden = F.silu(self.matmul(x, indices, self.up))
        return (self.matmul(hidden, indices, self.down) * weights.unsqueeze(-1)).sum(1)


class SelfAttn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)


class TinyMoE(nn.Module):
    """Embedding -> attention-group linear -> linear -> routed experts -> head, with a state."""

    output_names = ("logits", "state_out")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.self_attn = SelfAttn()
        self.in_proj = nn.Linear(HIDDEN, HIDDEN)
        self.gate = nn.Linear(HIDDEN, EXPERTS, bias=False)
        self.experts = Experts()
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)
        self.half()

    def forward(self, input_ids, state):
        h = self.embed(input_ids).reshape(1, HIDDEN) + state
        h = self.in_proj(self.self_attn.q_proj(h))
        weights, indices = torch.topk(torch.sigmoid(self.gate(h)), TOP_K, dim=-1)
        new_state = h + self.experts(h, indices, weights)
        return self.lm_head(new_state), new_state


EXAMPLE = {"input_ids": torch.tensor([[5]]), "state": torch.zeros(1, HIDDEN)}


def custom_scheme(name: str, quantize: dict) -> Scheme:
    """A scheme that is not in zoo/schemes.toml: ``quantize`` per group, every other group fp16."""
    from zootool.arch.base import TENSOR_GROUPS

    return Scheme(id=name, summary=name, quantize=quantize, keep_fp16=[g for g in TENSOR_GROUPS if g not in quantize])


def export_tiny(tmp_path: Path, scheme, kernel: str = "gather_mm", **kwargs) -> tuple[TinyMoE, Path]:
    model = TinyMoE()
    out = tmp_path / f"tiny-{getattr(scheme, 'id', scheme)}-{kernel}.aimodel"
    backend.export_aimodel(model, EXAMPLE, out, scheme=scheme, kernel=kernel, **kwargs)
    return model, out


def stored(model: nn.Module, kind: type, *names: str) -> tuple[int, int]:
    """(data elements, scale/LUT elements) held by ``kind`` modules of ``model``."""
    mods = [m for m in model.modules() if isinstance(m, kind)]
    return sum(getattr(m, names[0]).numel() for m in mods), sum(getattr(m, names[1]).numel() for m in mods)


def torch_step(model: TinyMoE, token: int, state: torch.Tensor):
    with torch.no_grad():
        return model(torch.tensor([[token]], dtype=torch.int32), state)


def test_import_does_not_load_torch():
    code = "import sys, zootool.backends.coreai.export; assert 'torch' not in sys.modules and 'coreai' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})


def test_missing_stack_is_backend_unavailable():
    code = (
        "import sys; sys.modules['coreai_torch'] = None\n"
        "from zootool.backends.coreai import export as coreai\nfrom zootool.errors import BackendUnavailableError\n"
        "try:\n    coreai.export_aimodel(None, (), 'x.aimodel')\n"
        "except BackendUnavailableError as e:\n    print('unavailable', e.exit_code, e.hint)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert done.stdout.startswith(f"unavailable {BackendUnavailableError.exit_code} install"), done.stderr


def test_tensor_groups_follow_names():
    model = TinyMoE()
    groups = {name: tensor_group(name, m) for name, m in model.named_modules() if name}
    assert groups["embed"] == "embedding"
    assert groups["self_attn.q_proj"] == "attention"
    assert groups["in_proj"] == "linear"
    assert groups["gate"] == "router"
    assert groups["experts"] == "experts"
    assert groups["lm_head"] == "lm-head"


def test_a_tied_head_reads_the_quantized_embedding_table():
    from zootool.backends.coreai.quant import BlockQuantEmbedding, TiedBlockQuantHead, quantize_module

    tied, untied = TinyMoE(), TinyMoE()
    tied.lm_head.weight = tied.embed.weight
    int8 = QuantSpec(method="symmetric", bits=8, block_size=32)
    plan = custom_scheme("e8", {"embedding": int8, "lm-head": int8})
    for model in (tied, untied):
        quantize_module(model, plan, use_kernel=False)
        assert isinstance(model.embed, BlockQuantEmbedding)
    assert isinstance(tied.lm_head, TiedBlockQuantHead) and tied.lm_head.embedding is tied.embed
    assert not any(name.startswith("lm_head") for name in tied.state_dict())  # one table, the embedding's
    assert isinstance(untied.lm_head, BlockQuantLinear)
    x = torch.randn(2, HIDDEN, dtype=torch.float16)
    torch.testing.assert_close(tied.lm_head(x), F.linear(x, tied.embed.dense()))
    ids = torch.tensor([[3, 9]])
    torch.testing.assert_close(tied.embed(ids), tied.embed.dense()[ids])


@pytest.mark.slow
def test_fp16_stores_no_integer_weights(tmp_path):
    model, out = export_tiny(tmp_path, "fp16")
    storage = backend.storage_summary(out)["storage"]
    assert not {"Int8", "Int4", "UInt4"} & set(storage)
    params = sum(p.numel() for p in model.parameters())
    assert params <= storage["Float16"] < params * 1.05
    assert backend.storage_summary(out)["compute"].count("Float16") == 1


@pytest.mark.slow
def test_sym8_quantizes_experts_and_linears_only(tmp_path):
    model, out = export_tiny(tmp_path, "sym8")
    for name in ("embed", "gate", "lm_head"):
        assert not isinstance(getattr(model, name), BlockQuantLinear)
    assert isinstance(model.self_attn.q_proj, nn.Linear) and isinstance(model.in_proj, BlockQuantLinear)
    assert isinstance(model.experts.up, BlockQuantExperts) and model.experts.up.wq.shape == (EXPERTS, INTER, 256)
    codes = stored(model, BlockQuantLinear, "wq", "ws")[0] + stored(model, BlockQuantExperts, "wq", "ws")[0]
    scales = stored(model, BlockQuantLinear, "wq", "ws")[1] + stored(model, BlockQuantExperts, "wq", "ws")[1]
    summary = backend.storage_summary(out)
    # Int8 = the codes plus (at most) one int8 zero-point tensor per scale tensor.
    assert codes <= summary["storage"]["Int8"] <= codes + scales
    assert summary["ops"]["blockwise_shift_scale"] == 3
    assert "metal4_kernel" not in summary["ops"]


@pytest.mark.slow
def test_int4km_palettizes_experts(tmp_path):
    model, out = export_tiny(tmp_path, "int4km")
    indices, luts = stored(model, PalettizedExperts, "indices", "lut")
    assert indices == 2 * EXPERTS * INTER * HIDDEN and luts == 2 * EXPERTS * 64 * 16
    summary = backend.storage_summary(out)
    assert summary["storage"]["UInt4"] == indices
    assert summary["ops"]["lut_to_dense"] == 2
    linear_codes, linear_scales = stored(model, BlockQuantLinear, "wq", "ws")
    assert linear_codes <= summary["storage"]["Int8"] <= linear_codes + linear_scales


@pytest.mark.slow
def test_symmetric_int4_block_storage(tmp_path):
    int4 = custom_scheme("sym4", {"experts": QuantSpec(method="symmetric", bits=4, block_size=32)})
    model, out = export_tiny(tmp_path, int4)
    codes, scales = stored(model, BlockQuantExperts, "wq", "ws")
    storage = backend.storage_summary(out)["storage"]
    assert codes <= storage["Int4"] <= codes + scales and "Int8" not in storage


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fp16", "sym8", "int4km"])
def test_runtime_matches_torch(tmp_path, scheme):
    model, out = export_tiny(tmp_path, scheme)
    want_logits, want_state = torch_step(model, 5, torch.zeros(1, HIDDEN, dtype=torch.float16))
    got = backend.run_aimodel(out, {"input_ids": np.array([[5]]), "state": np.zeros((1, HIDDEN), np.float32)})
    assert got["logits"].dtype == np.float16 and got["logits"].shape == (1, VOCAB)
    np.testing.assert_allclose(got["logits"], want_logits.numpy(), atol=0.02, rtol=0.02)
    np.testing.assert_allclose(got["state_out"], want_state.numpy(), atol=0.02, rtol=0.02)


def test_quantized_logits_stay_close_to_fp16():
    reference = torch_step(TinyMoE(), 7, torch.zeros(1, HIDDEN, dtype=torch.float16))[0].float()
    for scheme, budget in (("sym8", 0.02), ("int4km", 0.15)):
        model = TinyMoE()
        backend._quantize(model, scheme, "gather_mm")
        got = torch_step(model, 7, torch.zeros(1, HIDDEN, dtype=torch.float16))[0].float()
        assert (got - reference).abs().max() < budget * reference.abs().max(), scheme


@pytest.mark.slow
def test_session_keeps_the_model_loaded_across_calls(tmp_path):
    model, out = export_tiny(tmp_path, "sym8")
    state, fed = torch.zeros(1, HIDDEN, dtype=torch.float16), np.zeros((1, HIDDEN), np.float16)
    with AimodelSession(out) as session:
        for token in (3, 1, 4, 1, 5):
            got = session.run({"input_ids": np.array([[token]], np.int32), "state": fed})
            want, state = torch_step(model, token, state)
            np.testing.assert_allclose(got["logits"], want.numpy(), atol=0.05, rtol=0.05)
            fed = got["state_out"]
        np.testing.assert_allclose(fed, state.numpy(), atol=0.05, rtol=0.05)


@pytest.mark.slow
def test_metadata_written(tmp_path):
    meta = {"author": "zootool", "license": "mit", "description": "tiny", "custom": {"zoo.plan": {"hash": "ab"}}}
    _, out = export_tiny(tmp_path, "fp16", metadata=meta)
    read = backend.read_metadata(out)
    assert (read["author"], read["license"], read["description"]) == ("zootool", "mit", "tiny")
    assert read["custom"] == {"zoo.plan": {"hash": "ab"}, "zootool.scheme": "fp16", "zootool.kernel": "gather_mm"}
    on_disk = json.loads((out / "metadata.json").read_text())
    assert on_disk["author"] == "zootool" and "zootool.scheme" in on_disk["creatorDefinedMetadata"]


def test_kernel_needs_sym8_experts(tmp_path):
    with pytest.raises(ConfigError, match="sym8"):
        export_tiny(tmp_path, "int4km", kernel="gather_qmm")
    with pytest.raises(ConfigError, match="no sym8 experts"):
        export_tiny(tmp_path, "fp16", kernel="gather_qmm")
    with pytest.raises(ConfigError, match="must end in .aimodel"):
        backend.export_aimodel(TinyMoE(), EXAMPLE, tmp_path / "tiny.mlpackage")
    with pytest.raises(ConfigError, match="unknown expert kernel"):
        export_tiny(tmp_path, "sym8", kernel="gather_fast")
    with pytest.raises(ConfigError, match="unknown scheme"):
        export_tiny(tmp_path, "int3")


@pytest.mark.slow
def test_sym8_kernel_build_converts(tmp_path):
    model, out = export_tiny(tmp_path, "sym8", kernel="gather_qmm")
    summary = backend.storage_summary(out)
    assert summary["ops"]["metal4_kernel"] == 2 and summary["ops"]["blockwise_shift_scale"] == 1
    assert backend.read_metadata(out)["custom"]["zootool.kernel"] == "gather_qmm"


class DataDependent(nn.Module):
    def forward(self, x):
        return (x * 2,) if x.sum() > 0 else (x,)


class Histogram(nn.Module):
    def forward(self, x):
        return (torch.histc(x, bins=4),)


@pytest.mark.parametrize(("module", "stage"), [(DataDependent(), "export"), (Histogram(), "convert")])
def test_stack_failures_name_the_stage(tmp_path, module, stage):
    with pytest.raises(BackendFailedError, match=f"Core AI {stage} stage failed") as info:
        backend.export_aimodel(module, (torch.randn(8),), tmp_path / "bad.aimodel", output_names=["y"])
    assert info.value.hint and info.value.exit_code == 5
    assert not (tmp_path / "bad.aimodel").exists()


@pytest.mark.slow
def test_run_reports_bad_inputs(tmp_path):
    _, out = export_tiny(tmp_path, "fp16")
    with pytest.raises(BackendFailedError, match="no input named 'ids'"):
        backend.run_aimodel(out, {"ids": np.array([[1]]), "state": np.zeros((1, HIDDEN))})
    with pytest.raises(BackendFailedError, match="runtime run failed"):
        backend.run_aimodel(out, {"input_ids": np.array([[1, 2]]), "state": np.zeros((1, HIDDEN))})


def test_symmetric_quantization_error_is_bounded():
    weight = torch.randn(16, 128)
    codes, scales = quantize_symmetric(weight, 8, 32)
    assert codes.abs().max() <= 127
    back = codes.float().reshape(16, 4, 32) * scales.float().unsqueeze(-1)
    assert ((back.reshape(16, 128) - weight).abs() <= scales.float().repeat_interleave(32, 1) * 0.5 + 1e-6).all()


def test_kmeans_beats_a_uniform_grid():
    rows = torch.randn(64, 512)
    lut, codes = kmeans_rows(rows, 16)
    assert codes.dtype == torch.uint8 and int(codes.max()) < 16
    kmeans_err = (lut.gather(1, codes.long()) - rows).pow(2).mean()
    grid = torch.linspace(-1, 1, 16) * rows.abs().amax(1, keepdim=True)
    nearest = (rows - grid[:, :1]).div(grid[:, 1:2] - grid[:, :1]).round().long()
    uniform_err = (grid.gather(1, nearest) - rows).pow(2).mean()
    assert kmeans_err < 0.75 * uniform_err


# --- the real decode graph: tiny LFM2-MoE through the backend and the engine driver ------

LFM2_STEPS, LFM2_CONTEXT = 44, 64


@pytest.fixture(scope="module")
def lfm2(tmp_path_factory):
    """A seeded tiny LFM2-MoE checkpoint, token ids and the fp32 torch graph's logits."""
    from lfm2_configs import TINY_LFM2_MOE

    from zootool.arch.decode_graph import decode_tokens
    from zootool.fetch.checkpoint import generate_tiny_checkpoint

    checkpoint = generate_tiny_checkpoint(tmp_path_factory.mktemp("lfm2") / "ckpt", TINY_LFM2_MOE, seed=7)
    ids = torch.randint(0, TINY_LFM2_MOE["vocab_size"], (LFM2_STEPS,), generator=torch.Generator().manual_seed(3))
    oracle = decode_tokens(lfm2_graph(checkpoint, torch.float32), ids.tolist()).float().numpy()
    return checkpoint, ids.tolist(), oracle


def lfm2_graph(checkpoint: Path, dtype):
    from graphs import loaded_graph

    return loaded_graph(checkpoint, LFM2_CONTEXT, dtype)


def model_folder(tmp_path: Path, graph, scheme, query_len, kernel: str = "gather_mm", consume: bool = False) -> Path:
    """An exported graph beside the ``metadata.json`` the engine driver reads (``scheme``: an id or object)."""
    folder = tmp_path / f"{getattr(scheme, 'id', scheme)}-{query_len}-{kernel}-{consume}"
    folder.mkdir()
    backend.export_decode_graph(graph, folder / "m.aimodel", query_len=query_len, scheme=scheme, kernel=kernel,
                                metadata={}, consume_weights=consume)
    language = {"tokenizer": "tokenizer", "vocab_size": graph.layout.vocab, "max_context_length": LFM2_CONTEXT,
                "function_map": {"main": ["main"]}}
    (folder / "metadata.json").write_text(json.dumps(
        {"metadata_version": "0.2", "kind": "llm", "name": "tiny", "assets": {"main": "m.aimodel"}, "language": language}
    ))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(("scheme", "query_len"), [("fp16", None), ("sym8", None), ("sym8", 1)])
def test_lfm2_moe_runs_through_the_engine_driver(tmp_path, lfm2, scheme, query_len):
    from zootool.arch.decode_graph import decode_tokens
    from zootool.gate.engine import EngineDriver

    checkpoint, ids, oracle = lfm2
    graph = lfm2_graph(checkpoint, torch.float16)
    folder = model_folder(tmp_path, graph, scheme, query_len)
    with EngineDriver(folder) as driver:
        # A non-empty prompt prefilled in one call (q = 7 where the graph allows it), then one token a call.
        got = np.concatenate([driver.feed(ids[:7]), *(driver.feed([t]) for t in ids[7:])])
        assert driver.graph.capacity >= LFM2_STEPS
    want = decode_tokens(graph, ids).float().numpy()  # the same quantized fp16 graph in torch
    np.testing.assert_allclose(got, want, atol=0.01)
    np.testing.assert_allclose(got, oracle, atol=0.03)
    assert (got.argmax(1) == oracle.argmax(1)).mean() >= 0.95
    summary = backend.storage_summary(folder / "m.aimodel")
    assert ("Int8" in summary["storage"]) == (scheme == "sym8")
    assert list(summary["inputs"]) == ["input_ids", "position_ids"]
    assert summary["inputs"]["input_ids"] == ("NDArray (Int32, 1 × 1)" if query_len else "NDArray (Int32, 1 × ?)")
    assert list(summary["states"]) == ["keyCache", "valueCache", "convState"]


@pytest.mark.slow
def test_engine_driver_grows_kv_states_and_prefills_in_chunks(tmp_path, lfm2, monkeypatch):
    from zootool.gate import engine

    checkpoint, ids, oracle = lfm2
    folder = model_folder(tmp_path, lfm2_graph(checkpoint, torch.float16), "fp16", None)
    monkeypatch.setattr(engine, "INITIAL_CAPACITY", 4)
    with engine.EngineDriver(folder, chunk_threshold=8) as driver:
        calls = driver._calls(ids)
        got = driver.feed(ids)
        assert driver.graph.capacity == 64  # 4 -> 8 -> ... doubled as the context grew
    assert [len(c) for c in calls] == [8] * 5 + [4]  # min(512, threshold) per call beyond the threshold
    np.testing.assert_allclose(got, oracle, atol=0.03)


@pytest.mark.slow
def test_lfm2_moe_kernel_build_converts(tmp_path, lfm2):
    checkpoint, _, _ = lfm2
    graph = lfm2_graph(checkpoint, torch.float32)
    folder = model_folder(tmp_path, graph, "sym8", 1, kernel="gather_qmm")
    moe_layers = len(graph.layers) - graph.arch.num_dense_layers
    assert backend.storage_summary(folder / "m.aimodel")["ops"]["metal4_kernel"] == 2 * moe_layers


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fp16", "sym8", "int4km"])
def test_consuming_export_frees_the_weights_and_converts_the_same(tmp_path, lfm2, scheme):
    """consume_weights empties every weight of the module once converted, and changes no output.

    int4km: the palette indices too, which the converter repacks as sub-byte tensors of its own.
    """
    from zootool.gate.engine import EngineDriver

    checkpoint, ids, _ = lfm2
    kept, consumed = lfm2_graph(checkpoint, torch.float16), lfm2_graph(checkpoint, torch.float16)
    weight_bytes = sum(p.untyped_storage().nbytes() for p in consumed.parameters())
    outputs = []
    for graph, consume in ((kept, False), (consumed, True)):
        with EngineDriver(model_folder(tmp_path, graph, scheme, None, consume=consume)) as driver:
            outputs.append(np.concatenate([driver.feed(ids[:5]), *(driver.feed([t]) for t in ids[5:12])]))
    np.testing.assert_array_equal(outputs[0], outputs[1])

    def held(graph):
        return sum(t.untyped_storage().nbytes() for t in [*graph.parameters(), *graph.buffers()] if t.numel() > 1024)

    assert held(consumed) < weight_bytes / 100 < held(kept) / 10


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["sym8", "int4km"])
def test_consuming_converter_leaves_the_program_no_weight_bytes(lfm2, scheme):
    """Once converted, neither the module nor the exported program holds a weight: the constants are the one copy.

    int4km: the program's state dict holds the converter's own packed index tensors; they
    must go too (at full size they were ~4 GB beside their constants, the iphone build's peak).
    """
    from coreai_torch import TorchConverter

    from zootool.backends.coreai.consume import consuming_converter

    import gc

    checkpoint, _, _ = lfm2
    graph = lfm2_graph(checkpoint, torch.float16)
    backend._quantize(graph, scheme, "gather_mm")
    tensors = [*graph.parameters(), *graph.buffers()]
    weight_bytes = {t.untyped_storage().data_ptr() for t in [*tensors, *(t._base for t in tensors if t._base is not None)]
                    if t.untyped_storage().nbytes() > 4096}
    del tensors
    names, args = backend._prepare_inputs(graph, graph.example_inputs(None))
    states = graph.state_names()
    program = backend._export(graph, args, graph.dynamic_shapes(None))
    converter = consuming_converter(TorchConverter.Mode.RELEASE)
    converter.add_exported_program(program, input_names=[n for n in names if n not in states],
                                   output_names=list(graph.output_names), state_names=states)
    converter.to_coreai()

    def stored(tensor) -> int:
        return getattr(tensor, "elem", tensor).untyped_storage().nbytes()

    weights = [t for t in [*program.state_dict.values(), *program.constants.values()] if isinstance(t, torch.Tensor)]
    assert any(hasattr(t, "elem") for t in weights) == (scheme == "int4km")  # packed sub-byte indices
    assert sum(stored(t) for t in weights) < 4096, {n: stored(t) for n, t in program.state_dict.items() if stored(t) > 64}
    # Nor anything else: a view's base (alive from C++ where no one can empty it) kept whole code tensors.
    gc.collect()
    alive = [t for t in gc.get_objects() if type(t) in (torch.Tensor, torch.nn.Parameter) and t.device.type == "cpu"
             and t.untyped_storage().data_ptr() in weight_bytes]
    assert not alive, [(tuple(t.shape), t.dtype) for t in alive]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """A seeded tiny Qwen3 checkpoint (tied head, q/k norms) and token ids."""
    from llama_configs import TINY

    from zootool.fetch.checkpoint import generate_tiny_checkpoint

    checkpoint = generate_tiny_checkpoint(tmp_path_factory.mktemp("qwen3") / "ckpt", TINY["qwen3"], seed=5)
    ids = torch.randint(0, TINY["qwen3"]["vocab_size"], (12,), generator=torch.Generator().manual_seed(4))
    return checkpoint, ids.tolist()


def qwen3_graph(checkpoint: Path):
    from graphs import loaded_graph

    return loaded_graph(checkpoint, LFM2_CONTEXT, torch.float16)


def zoo_scheme(name: str):
    """A scheme of zoo/schemes.toml as the build passes it to the backend."""
    from zootool.config.zoo_data import Zoo

    return Zoo(SRC.parent).schemes[name]


def matrix_elements(graph: nn.Module) -> dict[str, int]:
    """Elements of the 2-D weights by tensor group, a tied head once (it is the embedding's)."""
    seen, counts = set(), {}
    for name, module in graph.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and id(weight) not in seen:
            seen.add(id(weight))
            group = tensor_group(name, module)
            counts[group] = counts.get(group, 0) + weight.numel()
    return counts


@pytest.mark.slow
def test_dense_schemes_quantize_attention_and_store_a_tied_head_once(tmp_path, qwen3):
    from zootool.arch.decode_graph import decode_tokens
    from zootool.gate.engine import EngineDriver

    checkpoint, ids = qwen3
    storage = {}
    for name in ("sym8", "int8-all", "mix48"):
        graph = qwen3_graph(checkpoint)
        elements = matrix_elements(graph)
        folder = model_folder(tmp_path, graph, zoo_scheme(name), None)
        storage[name] = backend.storage_summary(folder / "m.aimodel")["storage"]
        with EngineDriver(folder) as driver:
            got = driver.feed(ids)
        # The runtime runs what torch runs with the same quantized weights (and the tied head reads them).
        np.testing.assert_allclose(got, decode_tokens(graph, ids).float().numpy(), atol=0.01)
    assert set(elements) == {"embedding", "attention", "linear"}  # tied: no lm-head of its own
    emb, attn, mlp = elements["embedding"], elements["attention"], elements["linear"]
    everything = emb + attn + mlp
    # Int8/Int4 = the codes plus at most one zero point per 32-weight block. A second copy of the
    # tied table would add another `emb` (more than all the blocks together).
    assert everything <= storage["int8-all"]["Int8"] <= everything + everything // 32
    assert mlp <= storage["mix48"]["Int4"] <= mlp + mlp // 32
    assert emb + attn <= storage["mix48"]["Int8"] <= emb + attn + (emb + attn) // 32
    assert mlp <= storage["sym8"]["Int8"] <= mlp + mlp // 32 and "Int4" not in storage["int8-all"]
    # sym8 keeps attention and the embedding fp16; the dense schemes keep only their scales and the norms.
    fp16_saved = storage["sym8"]["Float16"] - storage["int8-all"]["Float16"]
    assert (emb + attn) * 0.95 < fp16_saved <= emb + attn - (emb + attn) // 32
    assert storage["mix48"]["Float16"] == storage["int8-all"]["Float16"]


@pytest.mark.parametrize("name", ["sym8", "int8-all"])
def test_quantizing_while_loading_equals_quantizing_the_loaded_model(qwen3, name):
    """Unit by unit (as the export loads) gives the very weights of quantizing afterwards, tied head included."""
    from graphs import build_decode_graph, load_weights

    from zootool.arch.decode_graph import decode_tokens
    from zootool.backends.coreai.quant import TiedBlockQuantHead, quantize_module

    checkpoint, ids = qwen3
    scheme = zoo_scheme(name)
    config = json.loads((checkpoint / "config.json").read_text())
    whole = qwen3_graph(checkpoint)
    quantize_module(whole, scheme, use_kernel=False)
    with torch.device("meta"):
        streamed = build_decode_graph(config, LFM2_CONTEXT, torch.float16)
    load_weights(streamed, checkpoint, lambda unit: backend.quantize_unit(streamed, scheme, "gather_mm", unit))
    assert not any(t.is_meta for t in [*streamed.parameters(), *streamed.buffers()])
    assert isinstance(streamed.lm_head, TiedBlockQuantHead) == (name == "int8-all")
    assert streamed.state_dict().keys() == whole.state_dict().keys()
    for key, value in whole.state_dict().items():
        assert torch.equal(streamed.state_dict()[key], value), key
    assert torch.equal(decode_tokens(streamed.eval(), ids), decode_tokens(whole, ids))


@pytest.mark.slow
def test_summary_is_parsed_once_per_asset_version(tmp_path):
    from zootool.backends.coreai import summary as summaries

    _, out = export_tiny(tmp_path, "fp16")
    first = backend.storage_summary(out)
    parsed = summaries._parsed.cache_info().misses
    first["storage"].clear()  # a caller's change does not reach the kept facts
    again = backend.storage_summary(out)
    assert summaries._parsed.cache_info().misses == parsed and again["storage"]["Float16"] > 0
    # The same path, exported again with int8 weights: a new version, read anew.
    backend.export_aimodel(TinyMoE(), EXAMPLE, out, scheme="sym8")
    assert "Int8" in backend.storage_summary(out)["storage"]
    assert summaries._parsed.cache_info().misses == parsed + 1
    with pytest.raises(BackendFailedError, match="no function 'decode'"):
        backend.storage_summary(out, "decode")
