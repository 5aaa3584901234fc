"""Every scheme's model folder, run through the engine driver, against the torch reference graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from llama_configs import TINY  # noqa: E402
from lfm2_configs import TINY_LFM2_MOE  # noqa: E402

from zootool.fetch.checkpoint import generate_tiny_checkpoint  # noqa: E402
from zootool.gate.engine import EngineDriver  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STEPS, CONTEXT, PROMPT = 44, 64, 9


def metadata(vocab: int, main: str, fmt: str) -> dict:
    language = {"tokenizer": "tokenizer", "vocab_size": vocab, "max_context_length": CONTEXT,
                "function_map": {"main": ["main"]}}
    return {"metadata_version": "0.2", "kind": "llm", "name": "t", "assets": {"main": main, "format": fmt},
            "language": language}


def graph_for(family: str, checkpoint: Path, dtype=torch.float32):
    from graphs import loaded_graph

    return loaded_graph(checkpoint, CONTEXT, dtype)


def export(folder: Path, family: str, checkpoint: Path, scheme_id: str, backend: str) -> None:
    quant = Zoo(REPO).schemes[scheme_id]
    folder.mkdir()
    graph = graph_for(family, checkpoint)
    if backend == "coreai":
        from zootool.backends.coreai.export import export_decode_graph

        export_decode_graph(graph, folder / "m.aimodel", query_len=None, scheme=quant, kernel="gather_mm", metadata={})
        main, fmt = "m.aimodel", "aimodel"
    else:
        from zootool.backends.coremltools.export import export_mlpackage

        config = json.loads((checkpoint / "config.json").read_text())
        custom = {"zootool.family": family, "zootool.config": config, "zootool.context_length": CONTEXT}
        export_mlpackage(graph, folder / "m.mlpackage", scheme=quant, metadata={"custom": custom})
        main, fmt = "m.mlpackage", "mlpackage"
    (folder / "metadata.json").write_text(json.dumps(metadata(graph.layout.vocab, main, fmt)))


def reference(family: str, checkpoint: Path, scheme_id: str, ids: list[int]) -> np.ndarray:
    """The fp16 torch graph with the same weight quantization (Core AI storage ops, dequantized)."""
    from zootool.arch.decode_graph import decode_tokens
    from zootool.backends.coreai.quant import quantize_module

    graph = graph_for(family, checkpoint, torch.float16)
    if scheme_id in ("sym8", "int4km"):
        quantize_module(graph, Zoo(REPO).schemes[scheme_id], use_kernel=False)
    return decode_tokens(graph, ids).float().numpy()


CASES = [
    ("llama", "coreai", "fp16"), ("llama", "coreai", "sym8"), ("lfm2_moe", "coreai", "int4km"),
    ("llama", "coremltools", "sym8"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("family", "backend", "scheme_id"), CASES)
def test_teacher_forced_tokens_match_the_torch_graph(tmp_path, family, backend, scheme_id):
    config = TINY["llama"] if family == "llama" else TINY_LFM2_MOE
    checkpoint = generate_tiny_checkpoint(tmp_path / "ckpt", config, seed=5)
    folder = tmp_path / "model"
    export(folder, family, checkpoint, scheme_id, backend)
    ids = torch.randint(0, config["vocab_size"], (STEPS,), generator=torch.Generator().manual_seed(2)).tolist()
    with EngineDriver(folder) as driver:  # a prompt prefilled in one call, then one token per call
        got = np.concatenate([driver.feed(ids[:PROMPT]), *(driver.feed([t]) for t in ids[PROMPT:])])
    want = reference(family, checkpoint, scheme_id, ids)
    assert got.shape == (STEPS, config["vocab_size"])
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.95
    assert np.abs(got - want).max() < 0.1
