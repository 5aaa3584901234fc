"""How many bytes a Core AI model file holds beside its weights, measured against plan.program.

Exports 1- and 4-layer transformers fixtures of every family (tests/arch_fixtures.py) at fp16
and at the family's quantized scheme, and prints, per export: the file's bytes beside the
estimated weights (measured), what ``plan.program.program_bytes`` predicts, and the estimate's
error against the whole file. When the converter changes, refit the constants of
src/zootool/plan/program.py to these rows. Run: ``python bench/program_bytes.py [--families a,b]``
(about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

LAYER_PATTERNS = {"lfm2": ["full_attention", "conv"], "lfm2_moe": ["full_attention", "conv"],
                  "gemma3_text": ["sliding_attention", "full_attention"], "qwen3": ["sliding_attention", "full_attention"],
                  "qwen3_next": ["full_attention", "linear_attention"]}


def fixture_changes(name: str, layers: int) -> dict:
    changes: dict = {"num_hidden_layers": layers}
    if name in LAYER_PATTERNS:
        changes["layer_types"] = (LAYER_PATTERNS[name] * layers)[:layers]
    if name == "lfm2_moe":
        changes["num_dense_layers"] = 0
    if name == "smollm3":
        changes["no_rope_layers"] = ([1, 0] * layers)[:layers]
    if name in ("qwen3_moe", "qwen2_moe", "qwen3_next"):
        changes["mlp_only_layers"] = []
    return changes


def measure(name: str, layers: int, quantized: bool, work: Path) -> dict:
    import torch
    from arch_fixtures import write_fixture
    from graphs import loaded_graph

    from zootool.backends.coreai.composites import composites_enabled
    from zootool.backends.coreai.export import export_decode_graph
    from zootool.config.zoo_data import Zoo
    from zootool.plan.estimate import estimate
    from zootool.plan.program import program_bytes

    checkpoint = write_fixture(work / f"{name}-{layers}", name, **fixture_changes(name, layers))
    graph = loaded_graph(checkpoint, 2048, torch.float16)
    if composites_enabled():  # ZOO_COREAI_COMPOSITES=1, as the Core AI converter of a build then does
        graph.use_composites()
    layout, zoo = graph.arch.layout(), Zoo(REPO)
    scheme_id = ("sym8" if layout.routed_experts else "int8-all") if quantized else "fp16"
    scheme = zoo.schemes[scheme_id]
    weights = estimate(graph.arch.tensors(), scheme, zoo.kernels["gather_mm"]).weight_bytes
    asset = export_decode_graph(graph, work / f"{name}-{layers}-{scheme_id}.aimodel", query_len=None, scheme=scheme,
                                kernel="gather_mm", metadata={})
    size = sum(path.stat().st_size for path in asset.rglob("*") if path.is_file())
    predicted = program_bytes(layout, scheme)
    shutil.rmtree(asset)
    return {"family": name, "layers": layers, "scheme": scheme_id, "file_bytes": size, "measured": size - weights,
            "predicted": predicted, "error_pct": round(100 * (weights + predicted - size) / size, 2)}


def main() -> None:
    from zootool.arch.registry import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--schemes", default="fp16,quantized", help="fp16, quantized or both")
    args = parser.parse_args()
    kinds = [kind == "quantized" for kind in args.schemes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-program-bytes-") as tmp:
        for name in args.families.split(","):
            for layers in (1, 4):
                for quantized in kinds:
                    rows.append(measure(name, layers, quantized, Path(tmp)))
                    print(json.dumps(rows[-1]), flush=True)
    errors = sorted(abs(row["error_pct"]) for row in rows)
    print(f"estimate error against the whole file: median {errors[len(errors) // 2]}%, max {errors[-1]}%")


if __name__ == "__main__":
    main()
