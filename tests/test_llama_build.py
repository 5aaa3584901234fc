"""`zoo build tiny-llama --target mac`: the dense family end to end through the Core AI backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_zoo, run_zoo

pytest.importorskip("coreai_torch")


@pytest.mark.slow
def test_zoo_build_tiny_llama_mac(tmp_path: Path):
    root = copy_zoo(tmp_path / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--json", root=root)
    assert result.returncode == 0, result.stderr
    bundle = root / "build" / "tiny-llama" / "mac"
    verified = run_zoo("verify", str(bundle), "--json", root=root)
    assert json.loads(verified.stdout) == {"bundle": str(bundle), "ok": True, "publishable": True, "problems": []}

    from zootool.backends.coreai import read_metadata, storage_summary

    manifest = json.loads((bundle / "manifest.json").read_text())
    aimodel = bundle / manifest["model_dir"] / "Tiny-Llama-sym8.aimodel"
    # sym8 on a dense model: the MLP linears (4 layers x 3 x 256 x 512) are int8, attention stays fp16.
    storage = storage_summary(aimodel)["storage"]
    assert storage.get("Int8", 0) >= 4 * 3 * 256 * 512, storage
    custom = read_metadata(aimodel)["custom"]
    assert custom["zootool.recipe"] == "tiny-llama" and custom["zootool.plan_hash"] == manifest["plan_hash"]
    app = json.loads((bundle / manifest["model_dir"] / "metadata.json").read_text())
    assert app["assets"] == {"main": "Tiny-Llama-sym8.aimodel"}
    gate = json.loads((bundle / "gate.json").read_text())
    assert gate["verdict"]["passed"] and gate["candidate"]["runtime"].startswith("Core AI runtime")
    assert manifest["kernel"] == "none"
    size = manifest["size"]
    assert abs(size["estimated_bytes"] - size["model_bytes"]) / size["model_bytes"] < 0.03
