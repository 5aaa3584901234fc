"""`zoo build tiny-llama --target mac`: the dense family end to end through the Core AI backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_zoo, run_zoo

pytest.importorskip("coreai_torch")

# tiny-llama's 2-D weights by tensor group: 4 layers of attention (q, o 256 x 256; k, v 128 x 256)
# and MLP (3 x 256 x 512), an untied embedding and head of 1024 x 256.
ATTENTION, MLP, EMBEDDING_AND_HEAD = 4 * 196_608, 4 * 393_216, 2 * 262_144


def weight_bytes(storage: dict[str, int]) -> int:
    """Bytes of the stored elements the size estimate counts (int codes and fp16 scales/tensors)."""
    return storage.get("Int8", 0) + storage.get("Int4", 0) // 2 + 2 * storage.get("Float16", 0)


def check_size(bundle: Path, manifest: dict, storage: dict[str, int]) -> None:
    size, estimate = manifest["size"], json.loads((bundle / "plan.json").read_text())["estimate"]
    # The weights' estimate: the stored weight elements exceed it only by a fixed ~25 kB (8 k int8
    # zero points, 8 k fp16 graph constants). With the program beside them (plan.program, ~45 kB
    # here) the estimate is the whole model file's size, within 1% of this 3 MB toy.
    assert 0 <= weight_bytes(storage) - estimate["weight_bytes"] < 30_000
    assert size["estimated_bytes"] == estimate["weight_bytes"] + estimate["program_bytes"]
    assert abs(size["model_bytes"] - size["estimated_bytes"]) < 0.01 * size["model_bytes"], size


@pytest.mark.slow
def test_zoo_build_tiny_llama_mac(tmp_path: Path):
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--json", root=root)
    assert result.returncode == 0, result.stderr
    bundle = root / "build" / "tiny-llama" / "mac"
    verified = run_zoo("verify", str(bundle), "--json", root=root)
    assert json.loads(verified.stdout) == {"bundle": str(bundle), "ok": True, "publishable": True, "problems": [],
                                  "warnings": [], "publish_refusals": []}

    from zootool.backends.coreai.export import read_metadata, storage_summary

    manifest = json.loads((bundle / "manifest.json").read_text())
    aimodel = bundle / manifest["model_dir"] / "Tiny-Llama-int8-all.aimodel"
    # The recipe's int8-all: attention, MLP, embedding and head all int8 (codes, plus at most a
    # zero point per block). fp16 is left for the scales (1 per 32 weights), the norms and a few
    # graph constants: far fewer elements than sym8, which keeps attention, embedding and head fp16.
    storage = storage_summary(aimodel)["storage"]
    codes = ATTENTION + MLP + EMBEDDING_AND_HEAD
    assert codes <= storage["Int8"] <= codes + codes // 32, storage
    assert storage["Float16"] < 1.15 * codes // 32 < (ATTENTION + EMBEDDING_AND_HEAD) // 10, storage
    custom = read_metadata(aimodel)["custom"]
    assert custom["zootool.recipe"] == "tiny-llama" and custom["zootool.plan_hash"] == manifest["plan_hash"]
    assert custom["zootool.scheme"] == "int8-all"
    # The asset says what the plan says: a dense model has no expert kernel (not the exporter's gather_mm path).
    assert custom["zootool.kernel"] == "none"
    app = json.loads((bundle / manifest["model_dir"] / "metadata.json").read_text())
    assert app["assets"] == {"main": "Tiny-Llama-int8-all.aimodel"}
    gate = json.loads((bundle / "gate.json").read_text())
    assert gate["verdict"]["passed"] and gate["candidate"]["runtime"].startswith("Core AI runtime")
    # Measured: the int8 embedding + head cost this fixture 1 flip, inside the recipe's allowance.
    assert gate["verdict"]["introduced"] <= 1
    assert manifest["kernel"] == "none"
    check_size(bundle, manifest, storage)
    # The converted program's op count, as the asset counts it, in --json and the manifest.
    ops = storage_summary(aimodel)["ops"]
    summary = json.loads(result.stdout)
    assert summary["program_ops"] == manifest["program"]["ops"] == sum(ops.values()) > 0
    assert manifest["program"]["most_common"] == dict(sorted(ops.items(), key=lambda o: (-o[1], o[0]))[:10])


@pytest.mark.slow
def test_mix48_stores_the_mlp_int4_and_fails_the_fixture_gate(tmp_path: Path):
    """Why mix48 is not tiny-llama's default: its 4-bit MLP flips about half the gate positions here."""
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--quant", "mix48", "--json", root=root)
    assert result.returncode == 6, result.stderr
    assert "FAIL (+" in result.stderr and "(not publishable)" in result.stderr
    bundle = root / "build" / "tiny-llama" / "mac"
    gate = json.loads((bundle / "gate.json").read_text())
    assert gate["verdict"]["introduced"] > 10  # 21 of 41 when measured

    from zootool.backends.coreai.export import storage_summary

    manifest = json.loads((bundle / "manifest.json").read_text())
    storage = storage_summary(bundle / manifest["model_dir"] / "Tiny-Llama-mix48.aimodel")["storage"]
    assert MLP <= storage["Int4"] <= MLP + MLP // 32, storage
    eight = ATTENTION + EMBEDDING_AND_HEAD
    assert eight <= storage["Int8"] <= eight + eight // 32, storage
    check_size(bundle, manifest, storage)


@pytest.mark.slow
def test_build_verify_and_publish_say_one_thing_of_an_override_build(tmp_path: Path):
    """A --quant build that passes its gate is a local experiment: zoo publish refuses it, so neither
    zoo build nor zoo verify may call it publishable."""
    root = copy_zoo(tmp_path / "zoo")
    built = run_zoo("build", "tiny-llama", "--target", "mac", "--quant", "sym8", root=root)
    assert built.returncode == 0, built.stderr
    reason = "built with command-line overrides (quant): the zoo publishes what the recipe says"
    assert f"publishable: no ({reason})" in built.stdout, built.stdout
    bundle = root / "build" / "tiny-llama" / "mac"
    verified = run_zoo("verify", str(bundle), root=root)
    assert verified.returncode == 0 and f"publishable: no ({reason})" in verified.stdout, verified.stdout
    as_json = json.loads(run_zoo("verify", str(bundle), "--json", root=root).stdout)
    assert (as_json["publishable"], as_json["publish_refusals"]) == (False, [reason])
    published = run_zoo("publish", "tiny-llama", "--target", "mac", "--dry-run", root=root)
    assert published.returncode == 8 and "built with command-line overrides (quant)" in published.stderr


@pytest.mark.slow
def test_int4_all_stores_every_matrix_int4(tmp_path: Path):
    """Apple's macOS default form: attention, MLP, embedding and head int4 per block of 32, norms fp16.
    (On this random fixture its gate fails, +31 flips of 41 when measured, as 4-bit weights do here.)"""
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--quant", "int4-all", "--no-gate", "--json", root=root)
    assert result.returncode == 0, result.stderr
    bundle = root / "build" / "tiny-llama" / "mac"

    from zootool.backends.coreai.export import storage_summary

    manifest = json.loads((bundle / "manifest.json").read_text())
    storage = storage_summary(bundle / manifest["model_dir"] / "Tiny-Llama-int4-all.aimodel")["storage"]
    codes = ATTENTION + MLP + EMBEDDING_AND_HEAD
    assert codes <= storage["Int4"] <= codes + codes // 32, storage
    assert storage.get("Int8", 0) <= codes // 32, storage  # zero points at most: no int8 weights left
    check_size(bundle, manifest, storage)
