"""Core AI exports through the converter's RMSNorm and RoPE composites (``ZOO_COREAI_COMPOSITES=1``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from zootool.arch.decode_graph import decode_tokens  # noqa: E402
from zootool.arch.decoder import build_decode_graph  # noqa: E402
from zootool.arch.registry import architecture_of  # noqa: E402
from zootool.arch.weights import load_weights  # noqa: E402

CONTEXT = 64


def graph_of(checkpoint, dtype):
    arch = architecture_of(json.loads((checkpoint / "config.json").read_text()), str(checkpoint))
    graph = build_decode_graph(arch, CONTEXT, dtype)
    load_weights(graph, checkpoint)
    return graph.eval()


def test_composites_are_opt_in(monkeypatch):
    from zootool.backends.coreai.composites import ENV, composites_enabled

    monkeypatch.delenv(ENV, raising=False)
    assert not composites_enabled()
    monkeypatch.setenv(ENV, "1")
    assert composites_enabled()


@pytest.mark.slow
def test_a_composite_export_converts_runs_and_matches_torch(arch_checkpoint, tmp_path):
    """qwen3 (q/k norms, RoPE, a sliding window): each norm and rotation is one composite call, and the
    Linux runtime's logits match the fp32 torch graph as the decomposed export's do."""
    from zootool.backends.coreai.export import export_decode_graph, storage_summary
    from zootool.gate.engine import CoreAIGraph

    checkpoint = arch_checkpoint("qwen3")
    graph = graph_of(checkpoint, torch.float16)
    assert graph.use_composites() == ["rms_norm", "rope"]
    asset = export_decode_graph(graph, tmp_path / "c.aimodel", query_len=None, scheme="fp16", kernel="gather_mm",
                                metadata={})
    ops = storage_summary(asset)["ops"]
    # 3 layers x (2 norms + q/k norms + q/k rotations) + the final norm
    assert ops.get("invoke", 0) >= 3 * 6 + 1, ops
    ids = list(range(3, 23))
    want = decode_tokens(graph_of(checkpoint, torch.float32), ids, len(ids)).numpy()
    runtime = CoreAIGraph(asset, "main", CONTEXT)
    try:
        got = np.concatenate([runtime(np.array([ids[:8]], np.int32), 8),
                              *(runtime(np.array([[t]], np.int32), i + 1) for i, t in enumerate(ids) if i >= 8)])
    finally:
        runtime.close()
    error = np.abs(got - want).max(-1)
    assert np.median(error) < 0.03 and error.max() < 0.05, error
