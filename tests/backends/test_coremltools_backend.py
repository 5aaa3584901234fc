"""The Core ML backend: saved .mlpackage metadata, stored weight dtypes, read-back weights, a full build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_zoo, run_zoo

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools")

from llama_configs import TINY  # noqa: E402

from graphs import build_decode_graph, load_weights  # noqa: E402

from zootool.arch.decode_graph import decode_tokens  # noqa: E402
from zootool.backends.coreai.quant import quantize_symmetric  # noqa: E402
from zootool.backends.coremltools.export import const_name, deployment_target, export_mlpackage  # noqa: E402
from zootool.backends.coremltools.runtime import (
    CoreMLGraph, read_metadata, read_weights, runtime_name, signature, storage_summary,
)
from zootool.fetch.checkpoint import generate_tiny_checkpoint  # noqa: E402
from zootool.errors import BackendFailedError, ConfigError, NotImplementedFeatureError  # noqa: E402
from zootool.config.zoo_data import QuantSpec, Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_CONTEXT = 16
METADATA = {
    "author": "zootool test", "license": "MIT License", "description": "tiny llama for a test",
    "custom": {"zootool.recipe": "tiny-llama", "zootool.plan_hash": "0123456789abcdef"},
}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untied head, attention and MLP biases: every kind of constant the readback must find."""
    return generate_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "llama", TINY["llama"], seed=3)


def module_for(checkpoint: Path):
    graph = build_decode_graph(json.loads((checkpoint / "config.json").read_text()), MAX_CONTEXT)
    load_weights(graph, checkpoint)
    return graph.eval()


def metadata_for(checkpoint: Path) -> dict:
    """The test metadata plus what a readback on Linux needs to rebuild the graph."""
    config = json.loads((checkpoint / "config.json").read_text())
    extra = {"zootool.family": "llama", "zootool.config": config, "zootool.context_length": MAX_CONTEXT}
    return {**METADATA, "custom": {**METADATA["custom"], **extra}}


def scheme(name: str):
    return Zoo(REPO).schemes[name]


@pytest.fixture(scope="module")
def packages(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mlpackage")
    paths = {}
    for name in ("sym8", "pal4", "int8-all", "mix48"):
        quant = scheme(name)
        paths[name] = export_mlpackage(module_for(checkpoint), out / f"{name}.mlpackage",
                                       scheme=quant, target="iOS18", metadata=metadata_for(checkpoint))
    return paths


@pytest.mark.slow
def test_metadata_reads_back(packages):
    meta = read_metadata(packages["sym8"])
    assert (meta["author"], meta["license"], meta["description"]) == ("zootool test", "MIT License",
                                                                      "tiny llama for a test")
    assert meta["custom"]["zootool.recipe"] == "tiny-llama"
    assert meta["custom"]["zootool.plan_hash"] == "0123456789abcdef"
    assert meta["custom"]["zootool.scheme"] == "sym8" and meta["custom"]["zootool.deployment_target"] == "iOS18"


@pytest.mark.slow
def test_sym8_weight_dtypes(packages):
    weights = storage_summary(packages["sym8"])
    up = weights["decoder_layers_0_mlp_up_proj_weight_to_fp16"]
    assert (up["op"], up["dtype"], up["shape"]) == ("constexpr_blockwise_shift_scale", "int8", (128, 64))
    # sym8 keeps attention, embedding, head and norms fp16.
    for name in ("decoder_layers_0_self_attn_q_proj_weight_to_fp16", "decoder_embed_tokens_weight_to_fp16",
                 "decoder_lm_head_weight_to_fp16", "decoder_norm_weight_to_fp16"):
        assert (weights[name]["op"], weights[name]["dtype"]) == ("const", "fp16"), name


@pytest.mark.slow
def test_pal4_weight_dtypes(packages):
    weights = storage_summary(packages["pal4"])
    for name in ("decoder_layers_1_self_attn_k_proj_weight_to_fp16", "decoder_layers_2_mlp_down_proj_weight_to_fp16"):
        assert (weights[name]["op"], weights[name]["dtype"]) == ("constexpr_lut_to_dense", "uint4"), name
    rows = weights["decoder_layers_2_mlp_down_proj_weight_to_fp16"]["shape"][0]
    assert weights["decoder_layers_2_mlp_down_proj_weight_to_fp16"]["lut_shape"] == (rows, 1, 16, 1)  # one LUT per row
    assert weights["decoder_embed_tokens_weight_to_fp16"]["dtype"] == "fp16"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mlp"), [("int8-all", "int8"), ("mix48", "int4")])
def test_dense_schemes_quantize_attention_embedding_and_head(packages, name, mlp):
    weights = storage_summary(packages[name])
    blocks = {"attention": "decoder_layers_2_self_attn_v_proj_weight_to_fp16",
              "embedding": "decoder_embed_tokens_weight_to_fp16", "head": "decoder_lm_head_weight_to_fp16"}
    for group, constant in blocks.items():
        stored = (weights[constant]["op"], weights[constant]["dtype"])
        assert stored == ("constexpr_blockwise_shift_scale", "int8"), group
    up = weights["decoder_layers_0_mlp_up_proj_weight_to_fp16"]
    assert (up["op"], up["dtype"], up["shape"]) == ("constexpr_blockwise_shift_scale", mlp, (128, 64))
    assert weights["decoder_norm_weight_to_fp16"]["dtype"] == "fp16"
    # Fewer fp16 elements than sym8: attention, embedding and head no longer among them.
    sym8_fp16 = {n for n, w in storage_summary(packages["sym8"]).items() if w["dtype"] == "fp16"}
    fp16 = {n for n, w in weights.items() if w["dtype"] == "fp16"}
    assert set(blocks.values()) <= sym8_fp16 - fp16 and fp16 < sym8_fp16


@pytest.mark.slow
def test_mix48_readback_is_the_int4_block_weight(checkpoint, packages):
    module = module_for(checkpoint)
    original = module.layers["2"].mlp.down_proj.weight.detach()
    codes, scales = quantize_symmetric(original, 4, 32)
    rows, cols = original.shape
    expected = (codes.float().reshape(rows, -1, 32) * scales.float().unsqueeze(-1)).reshape(rows, cols)
    stored = torch.from_numpy(read_weights(packages["mix48"])["decoder_layers_2_mlp_down_proj_weight_to_fp16"]).float()
    step = scales.float().repeat_interleave(32, dim=1)
    # The nearest point of a 15-level grid per block: half a step from the original at most, and
    # coremltools' grid is the backend-free one (a rounding tie apart at most).
    assert ((stored - original).abs() <= step * 0.51).all()
    assert ((stored - expected).abs() <= step * 1.01).all()
    assert max(len(np.unique(block)) for block in stored.reshape(-1, 32).numpy()) <= 15


@pytest.mark.slow
def test_a_tied_head_is_stored_once_in_int8(tmp_path):
    """Qwen3 ties its head: under int8-all the package holds one int8 table, and the readback runs it."""
    checkpoint = generate_tiny_checkpoint(tmp_path / "qwen3", TINY["qwen3"], seed=5)
    quant = scheme("int8-all")
    package = export_mlpackage(module_for(checkpoint), tmp_path / "tied.mlpackage", scheme=quant, target="iOS18",
                               metadata=metadata_for(checkpoint))
    weights = storage_summary(package)
    table_shape = (TINY["qwen3"]["vocab_size"], TINY["qwen3"]["hidden_size"])
    tables = [n for n, w in weights.items() if w["shape"] == table_shape]
    assert tables == ["decoder_embed_tokens_weight_to_fp16"] and weights[tables[0]]["dtype"] == "int8"
    tokens = [1, 17, 300, 42, 7, 500, 99, 3]
    expected = decode_tokens(module_for(checkpoint), tokens).numpy()
    graph = CoreMLGraph(package, MAX_CONTEXT)
    actual = graph(np.array([tokens], np.int32), len(tokens))
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() >= 0.75
    assert np.abs(actual - expected).max() < 0.1 * np.abs(expected).max()


@pytest.mark.slow
def test_package_has_the_swift_transformers_stateful_signature(packages):
    spec = signature(packages["sym8"])
    assert list(spec["inputs"]) == ["inputIds", "causalMask"] and list(spec["outputs"]) == ["logits"]
    assert {name: kind for name, (kind, _) in spec["states"].items()} == {"keyCache": "stateType", "valueCache": "stateType"}
    assert spec["states"]["keyCache"][1] == [3, 1, 2, MAX_CONTEXT, 16]  # [layers, 1, kv_heads, max_context, head_dim]


@pytest.mark.slow
def test_sym8_readback_is_the_block_quantized_weight(checkpoint, packages):
    module = module_for(checkpoint)
    original = module.layers["1"].mlp.gate_proj.weight.detach()
    codes, scales = quantize_symmetric(original, 8, 32)
    expected = (codes.float().reshape(128, 2, 32) * scales.float().unsqueeze(-1)).reshape(128, 64)
    stored = torch.from_numpy(read_weights(packages["sym8"])["decoder_layers_1_mlp_gate_proj_weight_to_fp16"]).float()
    step = scales.float().repeat_interleave(32, dim=1)
    assert ((stored - expected).abs() <= step * 0.51 + 1e-3).all()  # at most one rounding step apart
    assert (stored - original).abs().max() < step.max()


@pytest.mark.slow
def test_pal4_rows_hold_sixteen_values(packages):
    stored = read_weights(packages["pal4"])["decoder_layers_0_self_attn_o_proj_weight_to_fp16"]
    assert max(len(np.unique(row)) for row in stored) <= 16


@pytest.mark.slow
def test_readback_graph_runs_the_package_weights(checkpoint, packages):
    reference = module_for(checkpoint)
    weights = read_weights(packages["sym8"])
    aliases = json.loads(read_metadata(packages["sym8"])["custom"]["zootool.weight_aliases"])
    assert aliases  # the generator's zero biases are equal: coremltools keeps one constant for them
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            key = "decoder." + name
            parameter.copy_(torch.from_numpy(weights[aliases.get(key, const_name(key))]).float())
    tokens = [1, 17, 300, 42, 7, 500, 99, 3]
    expected = decode_tokens(reference, tokens).numpy()
    graph = CoreMLGraph(packages["sym8"], MAX_CONTEXT)
    prompt = graph(np.array([tokens[:5]], np.int32), 5)  # prefill with q = 5, then one token a call
    rest = [graph(np.array([[t]], np.int32), 6 + i) for i, t in enumerate(tokens[5:])]
    actual = np.concatenate([prompt, *rest])
    assert np.abs(actual - expected).max() < 0.05
    assert (actual.argmax(-1) == expected.argmax(-1)).all()
    assert "read back from the .mlpackage" in runtime_name() or "Core ML" in runtime_name()


@pytest.mark.slow
def test_norm_weights_of_ones_survive_the_export(tmp_path):
    """transformers initialises RMSNorm weights to exactly one; coremltools folds ``x * 1`` away with its
    constant, and the package must still export and read back (q_norm/k_norm of a Qwen3 included)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    upstream = AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY["qwen3"]))
    norms = {name: p for name, p in upstream.named_parameters() if "norm" in name}
    assert "model.layers.0.self_attn.q_norm.weight" in norms and all(bool((p == 1).all()) for p in norms.values())
    upstream.save_pretrained(tmp_path / "qwen3")
    checkpoint = tmp_path / "qwen3"
    package = export_mlpackage(module_for(checkpoint), tmp_path / "ones.mlpackage", scheme=scheme("int8-all"),
                               metadata=metadata_for(checkpoint))
    folded = json.loads(read_metadata(package)["custom"]["zootool.folded_weights"])
    assert folded["decoder.layers.0.self_attn.q_norm.weight"] == 1.0
    tokens = [1, 17, 300, 42, 7]
    with torch.no_grad():
        expected = decode_tokens(module_for(checkpoint), tokens).numpy()
    actual = CoreMLGraph(package, MAX_CONTEXT)(np.array([tokens], np.int32), len(tokens))
    # int8-all weights against the fp32 module: transformers' init (std 0.02) keeps logits small.
    assert np.abs(actual - expected).max() < 0.05


def test_deployment_targets():
    assert deployment_target("ios", 18) == "iOS18" and deployment_target("macos", 15) == "macOS15"
    with pytest.raises(ConfigError, match="iOS 17 is too old"):
        deployment_target("ios", 17)


def test_unknown_target_and_unsupported_formats_are_config_errors(checkpoint, tmp_path):
    module = module_for(checkpoint)
    with pytest.raises(ConfigError, match="no deployment target 'iOS99'"):
        export_mlpackage(module, tmp_path / "x.mlpackage", target="iOS99")
    odd = scheme("int8-all").model_copy(update={"id": "odd", "quantize": {
        "linear": QuantSpec(method="symmetric", bits=3, block_size=32)}})
    with pytest.raises(ConfigError, match="cannot store symmetric 3-bit"):
        export_mlpackage(module, tmp_path / "x.mlpackage", scheme=odd)
    with pytest.raises(ConfigError, match="must end in .mlpackage"):
        export_mlpackage(module, tmp_path / "x.aimodel")
    assert not (tmp_path / "x.mlpackage").exists()


def test_moe_experts_are_refused(tmp_path):
    from lfm2_configs import TINY_LFM2_MOE
    from graphs import build_decode_graph as moe_graph

    with pytest.raises(NotImplementedFeatureError, match="Core ML backend has no path for"):
        export_mlpackage(moe_graph(TINY_LFM2_MOE, MAX_CONTEXT), tmp_path / "moe.mlpackage", scheme="sym8")


@pytest.mark.slow
def test_readback_refuses_a_package_whose_config_does_not_match(packages, tmp_path):
    from zootool.backends.coremltools.export import write_metadata

    import coremltools as ct

    model = ct.models.MLModel(str(packages["sym8"]), skip_model_load=True)
    other = dict(TINY["llama"], hidden_size=32, intermediate_size=64)
    write_metadata(model, {"custom": {"zootool.config": other}})
    model.save(str(tmp_path / "foreign.mlpackage"))
    with pytest.raises(BackendFailedError, match="the graph implies"):
        CoreMLGraph(tmp_path / "foreign.mlpackage", MAX_CONTEXT)
    with pytest.raises(BackendFailedError, match="is not a Core ML package"):
        read_weights(tmp_path)


@pytest.mark.slow
def test_zoo_build_iphone_ios18_bundle(tmp_path):
    """`zoo build tiny-llama --target iphone-ios18`: an .mlpackage bundle, gated, verified."""
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "iphone-ios18", "--json", root=root)
    assert result.returncode == 0, result.stderr
    bundle = root / "build" / "tiny-llama" / "iphone-ios18"
    verified = run_zoo("verify", str(bundle), "--json", root=root)
    assert json.loads(verified.stdout) == {"bundle": str(bundle), "ok": True, "publishable": True, "problems": [],
                                  "warnings": [], "publish_refusals": []}
    manifest = json.loads((bundle / "manifest.json").read_text())
    package = bundle / manifest["model_dir"] / "Tiny-Llama-int8-all.mlpackage"
    assert read_metadata(package)["custom"]["zootool.plan_hash"] == manifest["plan_hash"]
    weights = storage_summary(package)
    for name in ("decoder_layers_3_mlp_up_proj_weight_to_fp16", "decoder_layers_3_self_attn_q_proj_weight_to_fp16",
                 "decoder_embed_tokens_weight_to_fp16", "decoder_lm_head_weight_to_fp16"):
        assert weights[name]["dtype"] == "int8", name
    assert list(signature(package)["inputs"]) == ["inputIds", "causalMask"]
    app = json.loads((bundle / manifest["model_dir"] / "metadata.json").read_text())
    assert app["assets"] == {"main": "Tiny-Llama-int8-all.mlpackage", "format": "mlpackage"}
    assert app["compilation"]["targets"] == ["iOS18"]
    # The ML Program's op count, read from the package: the linears, norms and attention of 4 layers.
    program = manifest["program"]
    assert json.loads(result.stdout)["program_ops"] == program["ops"] > 4 * 10
    assert program["most_common"]["linear"] >= 4 * 7 + 1 and program["ops"] >= sum(program["most_common"].values())
    gate = json.loads((bundle / "gate.json").read_text())
    assert gate["verdict"]["passed"] and "read back from the .mlpackage" in gate["candidate"]["runtime"]
    assert gate["candidate"]["runtime"] in (bundle / "README.md").read_text()
    # The estimate counts weights: it matches weight.bin (plus RoPE tables and the zero biases Core ML
    # gives bias-free linears); the ~90 kB program protobuf beside it is a fixed cost, 5% of this int8 toy.
    weight_bin = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    estimated = manifest["size"]["estimated_bytes"]
    assert abs(estimated - weight_bin.stat().st_size) / weight_bin.stat().st_size < 0.03
    assert abs(estimated - manifest["size"]["model_bytes"]) / manifest["size"]["model_bytes"] < 0.08
