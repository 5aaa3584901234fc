"""`zoo build` end to end on the offline tiny recipe (one real conversion + gate per target)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_zoo, rehash_bundle, run_zoo

pytest.importorskip("coreai_torch")

MODEL = "tiny-lfm2-moe"
pytest_plugins = ["conftest_hub"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A zoo copy with the tiny model built and gated for `mac` (shared: conversion is slow)."""
    root = copy_zoo(tmp_path_factory.mktemp("zoo-build"))
    result = run_zoo("build", MODEL, "--target", "mac", "--json", root=root)
    assert result.returncode == 0, result.stderr
    return root


def bundle(root: Path, target: str = "mac") -> Path:
    return root / "build" / MODEL / target


def manifest(root: Path, target: str = "mac") -> dict:
    return json.loads((bundle(root, target) / "manifest.json").read_text())


@pytest.mark.slow
def test_bundle_layout_and_verify(built: Path):
    b = bundle(built)
    stem = "Tiny-LFM2-MoE-sym8"
    for rel in ("README.md", "LICENSE", "manifest.json", "gate.json", f"gpu-pipelined/{stem}/metadata.json",
                f"gpu-pipelined/{stem}/tokenizer/tokenizer.json", f"gpu-pipelined/{stem}/{stem}.aimodel/main.mlirb"):
        assert (b / rel).is_file(), rel
    assert not (built / "zoo" / "records").exists()  # only --record or a publish writes the catalog
    result = run_zoo("verify", str(b), "--json", root=built)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"bundle": str(b), "ok": True, "publishable": True, "problems": [],
                                  "warnings": [], "publish_refusals": []}


@pytest.mark.slow
def test_estimate_within_three_percent_of_actual(built: Path):
    size = manifest(built)["size"]
    assert abs(size["estimated_bytes"] - size["model_bytes"]) / size["model_bytes"] < 0.03


@pytest.mark.slow
def test_weights_really_are_int8_behind_the_metal_kernel(built: Path):
    from zootool.backends.coreai.export import read_metadata, storage_summary

    aimodel = next(bundle(built).rglob("*.aimodel"))
    summary = storage_summary(aimodel)
    assert summary["storage"].get("Int8", 0) > 4_000_000, summary["storage"]
    moe_layers = 4 - 1  # the tiny recipe: 4 layers, the first dense
    assert summary["ops"].get("metal4_kernel", 0) == 2 * moe_layers  # gate_up and down per MoE layer

    custom = read_metadata(aimodel)["custom"]
    assert custom["zootool.recipe"] == MODEL and custom["zootool.plan_hash"] == manifest(built)["plan_hash"]


@pytest.mark.slow
def test_gate_transcript_and_card(built: Path):
    gate = json.loads((bundle(built) / "gate.json").read_text())
    assert gate["positions"] == 41 and len(gate["candidate"]["tokens"]) == 41
    assert gate["verdict"]["passed"] is True
    assert "kernel-free twin" in gate["candidate"]["runtime"]
    assert gate["input_ids"] and gate["forced_tokens"] and len(gate["oracle_top"]) == 41
    card = (bundle(built) / "README.md").read_text()
    assert gate["line"] in card and "license: mit" in card and "library_name: coreai" in card
    assert "degenerates into repetition" not in card  # the flagship's note, not this fixture's


@pytest.mark.slow
def test_no_local_paths_in_published_files(built: Path):
    for name in ("manifest.json", "README.md", "gate.json"):
        text = (bundle(built) / name).read_text()
        assert str(built) not in text and "/root" not in text and "/home/" not in text, name


def plan_and_checkpoint(root: Path, **cli):
    from zootool.plan.resolve import resolve
    from zootool.config.recipe import Settings
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo

    zoo = Zoo(root)
    recipe, path = get(zoo, MODEL)
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path), overrides=Settings(**cli) if cli else None)
    return plan, next((root / ".zoo-cache" / "checkpoints").iterdir())


@pytest.mark.slow
def test_kernel_bundle_cannot_run_here_but_its_twin_matches_torch(built: Path, tmp_path: Path):
    """The kernel-free twin (same sym8 weights) through the engine driver vs the quantized graph in torch."""
    import torch

    from graphs import build_decode_graph, load_weights

    from zootool.arch.decode_graph import decode_tokens
    from zootool.backends.coreai.quant import quantize_module
    from zootool.backends.coreai.runtime import KernelNotExecutableError
    from zootool.gate.engine import EngineDriver, teacher_forced_logits
    from zootool.gate.run import twin_model_dir

    plan, checkpoint = plan_and_checkpoint(built)
    model_dir = bundle(built) / json.loads((bundle(built) / "manifest.json").read_text())["model_dir"]
    with pytest.raises(KernelNotExecutableError):
        EngineDriver(model_dir)
    twin = twin_model_dir(plan, checkpoint, tmp_path / "twin")
    graph = build_decode_graph(json.loads((checkpoint / "config.json").read_text()), plan.context_length,
                               dtype=torch.float16)
    load_weights(graph, checkpoint)
    quantize_module(graph, plan.scheme, use_kernel=False)
    tokens = [1, 17, 300, 42, 7, 512, 99, 3]
    with torch.no_grad():
        expected = decode_tokens(graph.eval(), tokens).float().numpy()
    actual = teacher_forced_logits(twin, tokens)
    # Same fp16 weights; the Linux CPU runtime accumulates fp16 matmuls in fp16, torch in fp32,
    # so values drift by a few hundredths at hidden 256 while the ranking holds.
    assert np.abs(actual - expected).max() < 0.15
    assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] > 0.995
    assert (actual.argmax(-1) == expected.argmax(-1)).all()

def test_replay_of_a_missing_or_malformed_transcript_is_a_config_error(tmp_path: Path):
    from zootool.errors import ConfigError
    from zootool.gate.run import load_transcript

    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "broken.json").write_text("{")
    for name in ("missing.json", "empty.json", "broken.json"):
        with pytest.raises(ConfigError) as caught:
            load_transcript(tmp_path / name)
        assert caught.value.message.startswith(f"--replay {tmp_path / name}: ")
        assert caught.value.hint


@pytest.mark.slow
def test_gate_replay_reproduces_the_verdict(built: Path, tmp_path: Path):
    out = tmp_path / "replayed.json"
    result = run_zoo("gate", str(bundle(built)), "--replay", str(bundle(built) / "gate.json"),
                     "--out", str(out), "--json", root=built)
    assert result.returncode == 0, result.stderr
    original = json.loads((bundle(built) / "gate.json").read_text())
    replayed = json.loads(out.read_text())
    assert replayed["candidate"]["tokens"] == original["candidate"]["tokens"]
    assert replayed["line"] == original["line"]


@pytest.mark.slow
def test_replay_refuses_another_targets_transcript(built: Path, tmp_path: Path):
    transcript = json.loads((bundle(built) / "gate.json").read_text())
    transcript["target"] = "iphone"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(transcript))
    result = run_zoo("gate", str(bundle(built)), "--replay", str(other), "--out", str(tmp_path / "o.json"), root=built)
    assert result.returncode == 2
    assert "a transcript of tiny-lfm2-moe --target iphone, but the bundle is tiny-lfm2-moe --target mac" in result.stderr


@pytest.mark.slow
def test_streamed_gate_agrees_with_the_engine_gate(built: Path, tmp_path: Path):
    """Both sides streamed in torch, one layer at a time: the engine gate's tokens, named as streamed."""
    out = tmp_path / "streamed.json"
    result = run_zoo("gate", MODEL, "--target", "mac", "--runtime", "streamed", "--out", str(out), "--json",
                     root=built)
    assert result.returncode == 0, result.stderr
    streamed, engine = json.loads(out.read_text()), json.loads((bundle(built) / "gate.json").read_text())
    assert streamed["oracle_tokens"] == engine["oracle_tokens"]
    for side in ("fp16", "candidate"):
        assert "zootool.gate.streamed" in streamed[side]["runtime"] and "Core AI" in engine[side]["runtime"]
        # The Linux runtime accumulates fp16 matmuls in fp16, torch in fp32: a random tiny model's
        # near-ties may go either way, so the flips they score stay within one.
        agree = [a == b for a, b in zip(streamed[side]["tokens"], engine[side]["tokens"], strict=True)]
        assert sum(agree) >= 0.9 * len(agree)
        assert abs(streamed[side]["flips"] - engine[side]["flips"]) <= 1, (streamed[side], engine[side])
    assert "quantized weights" in streamed["candidate"]["runtime"] and "fp16 weights" in streamed["fp16"]["runtime"]
    assert json.loads(result.stdout)["candidate_runtime"] == streamed["candidate"]["runtime"]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["engine", "streamed"])
def test_gate_reports_every_layer_or_call_of_each_side(built: Path, tmp_path: Path, runtime: str):
    from zootool.gate.progress import reporting_to
    from zootool.gate.run import run_gate

    plan, checkpoint = plan_and_checkpoint(built)
    layers = json.loads((checkpoint / "config.json").read_text())["num_hidden_layers"]
    notes: list[str] = []
    with reporting_to(notes.append):
        run_gate(plan, checkpoint, bundle(built) / manifest(built)["model_dir"], tmp_path / "gate.json", runtime=runtime)
    oracle = [note for note in notes if note.startswith("fp32 oracle: layer")]
    assert oracle == [f"fp32 oracle: layer {k}/{layers}" for k in range(1, layers + 1)]
    for side in ("fp16 ceiling", "candidate"):
        steps = [note for note in notes if note.startswith(f"{side}: layer") or note.startswith(f"{side}: call")]
        unit, done, total = re.fullmatch(rf"{side}: (layer|call) (\d+)/(\d+)", steps[-1]).groups()
        assert (unit, done) == ("layer", str(layers)) if runtime == "streamed" else (unit == "call" and done == total)
        assert len(steps) == int(total), steps  # one note per layer (or engine call), none skipped
    assert notes.index("fp16 ceiling") < notes.index("candidate")
    if runtime == "engine":  # the ceiling and the kernel-free twin are exported first, and say so
        assert "fp16 ceiling: exporting the fp16 graph" in notes and "candidate: exporting the kernel-free twin" in notes


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["auto", "streamed"])
def test_broken_candidate_fails_the_gate(built: Path, tmp_path: Path, runtime: str):
    """Zero every expert's weights of one MoE layer; the published transcript must catch it."""
    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path / "broken-zoo"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("build"))
    _, checkpoint = plan_and_checkpoint(built)
    broken = tmp_path / "broken-weights"
    shutil.copytree(checkpoint, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    zeroed = [name for name in tensors if name.startswith("model.layers.1.feed_forward.experts.")]
    assert zeroed
    for name in zeroed:
        tensors[name] = torch.zeros_like(tensors[name])
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    build = run_zoo("build", MODEL, "--target", "mac", "--weights", str(broken), "--no-gate", root=root)
    assert build.returncode == 0, build.stderr
    result = run_zoo("gate", str(root / "build" / MODEL / "mac"), "--replay", str(bundle(built) / "gate.json"),
                     "--weights", str(broken), "--out", str(tmp_path / "broken.json"), "--runtime", runtime,
                     root=root)
    assert result.returncode == 6, result.stderr
    assert "gate failed: FAIL (+" in result.stderr
    assert json.loads((tmp_path / "broken.json").read_text())["candidate"]["flips"] > 1


@pytest.mark.slow
def test_fp16_bundle_gates_clean(tmp_path: Path):
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", MODEL, "--target", "mac", "--quant", "fp16", "--kernel", "gather_mm", "--json",
                     root=root)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["gate"].startswith("CLEAN (+0 flips/41")
    assert manifest(root)["overrides"] == {"quant": "fp16", "kernel": "gather_mm"}
    refused = run_zoo("publish", MODEL, "--target", "mac", "--dry-run", root=root)
    assert refused.returncode == 8
    assert "built with command-line overrides (kernel, quant)" in refused.stderr


@pytest.mark.slow
def test_the_bundle_carries_its_plan_and_verify_checks_it(built: Path, tmp_path: Path):
    from zootool.plan.resolve import BuildPlan

    plan, _ = plan_and_checkpoint(built)
    recorded = BuildPlan.model_validate_json((bundle(built) / "plan.json").read_bytes())
    assert recorded.plan_hash == plan.plan_hash == manifest(built)["plan_hash"]
    assert (recorded.description, recorded.tags, recorded.overrides) == (plan.description, plan.tags, {})
    copy = tmp_path / "bundle"
    shutil.copytree(bundle(built), copy)
    data = json.loads((copy / "plan.json").read_text())
    data["context_length"] -= 1
    (copy / "plan.json").write_text(json.dumps(data))
    rehash_bundle(copy)
    result = run_zoo("verify", str(copy), root=built)
    assert result.returncode == 8
    assert f"plan.json: plan {recorded.model_copy(update={'context_length': plan.context_length - 1}).plan_hash} " \
        f"is not the manifest's {plan.plan_hash}" in result.stderr


@pytest.mark.slow
def test_tampered_or_stray_files_fail_verify(built: Path, tmp_path: Path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle(built), copy)
    text = (copy / "LICENSE").read_text()
    (copy / "LICENSE").write_text(text.replace("MIT", "XYZ", 1))  # same size, other bytes
    (copy / "stray.safetensors").write_bytes(b"0" * 10)
    result = run_zoo("verify", str(copy), root=built)
    assert result.returncode == 8
    assert "LICENSE: sha256 differs from the manifest" in result.stderr
    assert "stray.safetensors: not listed in the manifest" in result.stderr
    assert "stray.safetensors: not an allowed bundle file" in result.stderr


@pytest.mark.slow
def test_iphone_int4_bundle(tmp_path: Path):
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", MODEL, "--target", "iphone", "--json", "--no-gate", root=root)
    assert result.returncode == 0, result.stderr
    from zootool.backends.coreai.export import storage_summary

    storage = storage_summary(next(bundle(root, "iphone").rglob("*.aimodel")))["storage"]
    assert storage.get("UInt4", 0) > 3_000_000, storage
    size = manifest(root, "iphone")["size"]
    assert abs(size["estimated_bytes"] - size["model_bytes"]) / size["model_bytes"] < 0.03
    assert run_zoo("verify", str(bundle(root, "iphone")), root=root).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("transfer", ["lfs", "xet"], indirect=True)  # the hub fixture sets it for the subprocess
def test_publish_cli_to_local_hub_then_noop_republish(built: Path, hub, transfer: str, tmp_path: Path):
    from conftest_hub import WRITE_TOKEN

    env = {"HF_TOKEN": WRITE_TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    args = ("publish", MODEL, "--target", "mac", "--repo", "zoo-org/Tiny-CoreAI", "--endpoint", hub.url, "--json",
            "--record")
    first = run_zoo(*args, root=built, env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["commit_sha"] == hub.head("zoo-org/Tiny-CoreAI")
    assert WRITE_TOKEN not in first.stdout + first.stderr
    files = hub.files("zoo-org/Tiny-CoreAI")
    listed = {entry["path"]: entry["sha256"] for entry in manifest(built)["files"]}
    assert set(listed) | {"manifest.json"} <= set(files)
    assert hub.tags("zoo-org/Tiny-CoreAI")[manifest(built)["bundle_version"]] == result["commit_sha"]
    record = json.loads((built / "zoo" / "records" / MODEL / "mac.json").read_text())
    assert record["publish"]["commit"] == result["commit_sha"] and record["publish"]["repo"] == "zoo-org/Tiny-CoreAI"
    weights = next(path for path, entry in files.items() if path.endswith(".mlirb"))
    assert (files[weights].xet_hash is not None) == (transfer == "xet")
    assert hub.stats.count("xet_write_token" if transfer == "xet" else "lfs_batch") >= 1
    assert hub.stats.count("lfs_batch" if transfer == "xet" else "xet_write_token") == 0
    _reads_back_identical(hub, "zoo-org/Tiny-CoreAI", result["commit_sha"], listed, tmp_path / "read-back")
    if transfer == "xet":  # the weights came back from the Xet CAS, not through the LFS redirect
        assert hub.stats.count("xet_read_token") >= 1 and hub.stats.count("cdn") == 0
    again = run_zoo(*args, root=built, env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["commit_sha"] is None
    assert hub.head("zoo-org/Tiny-CoreAI") == result["commit_sha"]
    assert len(hub.commits("zoo-org/Tiny-CoreAI")) == 2  # the repo's creation and the one publish
    written = [p for p in (tmp_path / "hf-home").rglob("*") if p.is_file()]  # hf_xet's logs live there
    assert not [p for p in written if WRITE_TOKEN.encode() in p.read_bytes()]


def _reads_back_identical(hub, repo: str, commit: str, listed: dict[str, str], cache: Path) -> None:
    """Every manifest file, downloaded through the real client (and its Xet path when on), hashes as built."""
    import hashlib

    from huggingface_hub import snapshot_download

    from conftest_hub import WRITE_TOKEN

    snapshot = Path(snapshot_download(repo, revision=commit, endpoint=hub.url, token=WRITE_TOKEN, cache_dir=cache))
    for path, sha256 in listed.items():
        assert hashlib.sha256((snapshot / path).read_bytes()).hexdigest() == sha256, path


@pytest.mark.slow
def test_publish_dry_run_needs_no_network(built: Path):
    result = run_zoo("publish", MODEL, "--target", "mac", "--dry-run", "--json",
                     "--endpoint", "http://127.0.0.1:9", root=built)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["repo"] == "coreai-zoo/Tiny-LFM2-MoE-CoreAI"
    assert {"README.md", "LICENSE", "gate.json"} <= {f["path"] for f in plan["files"]}
    assert plan["card_front_matter"]["library_name"] == "coreai"


# Last: it replaces the gated bundle the tests above share with an ungated one.
@pytest.mark.slow
def test_rebuild_is_a_cache_hit_and_force_rebuilds(built: Path):
    again = run_zoo("build", MODEL, "--target", "mac", "--json", "--no-gate", root=built)
    # --no-gate changes the build key: not a cache hit.
    assert json.loads(again.stdout)["cached"] is False
    same = run_zoo("build", MODEL, "--target", "mac", "--json", "--no-gate", root=built)
    assert json.loads(same.stdout)["cached"] is True
    assert json.loads(same.stdout)["gate"] == "not gated (built with --no-gate)"
    forced = run_zoo("build", MODEL, "--target", "mac", "--json", "--no-gate", "--force", root=built)
    assert json.loads(forced.stdout)["cached"] is False
