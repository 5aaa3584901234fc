"""Peak memory of the Core ML export by phase against the plan's prediction (``plan/footprint.py``).

Figures, not assertions; run by hand: ``python bench/coreml_export_memory.py [--shapes smollm2-135m qwen3-0.6b]``.
Each shape is a random bf16 checkpoint of that published architecture (generated, no download),
built for ``mac-macos15`` (the ``coremltools`` backend) without the gate. Qwen3-0.6B needs about
10 GB and 8 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = {
    "smollm2-135m": {"hidden-size": 576, "num-hidden-layers": 30, "vocab-size": 49152, "num-attention-heads": 9,
                     "num-key-value-heads": 3, "intermediate-size": 1536, "rope-theta": 100000.0,
                     "rms-norm-eps": 1e-5, "max-position-embeddings": 8192, "model-type": "llama"},
    "qwen3-0.6b": {"hidden-size": 1024, "num-hidden-layers": 28, "vocab-size": 151936, "num-attention-heads": 16,
                   "num-key-value-heads": 8, "head-dim": 128, "intermediate-size": 3072, "rope-theta": 1000000.0,
                   "rms-norm-eps": 1e-6, "max-position-embeddings": 40960, "model-type": "qwen3"},
}  # fmt: skip


def recipe(name: str, shape: dict) -> str:
    keys = "\n".join(f"{key} = {json.dumps(value)}" for key, value in shape.items())
    return f"""schema = 1
[model]
id = "{name}"
name = "{name}"
source = {{ generate = "random", seed = 0 }}
license = "mit"
card = "llm"
[architecture]
family = "llama"
tie-embeddings = true
{keys}
[defaults]
kernel = "none"
[targets.mac-macos15]
platform = "mac-macos15"
quant = "int8-all"
"""


def zoo(root: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "zootool", "--root", str(root), *args, "--json"],
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"zoo {' '.join(args)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def _gb(peak: int | None) -> str:
    return "-" if peak is None else f"{peak / 1e9:.2f}"  # None: the phase raised no new peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("recipes", "zoo", "cards"):
            shutil.copytree(REPO / folder, root / folder)
        print("Core ML export (int8-all): measured peak RSS of each phase of the export child / the plan's phases (GB)")
        for name in args.shapes:
            (root / "recipes" / f"{name}.toml").write_text(recipe(name, SHAPES[name]))
            plan = zoo(root, "plan", name, "--target", "mac-macos15")
            built = zoo(root, "build", name, "--target", "mac-macos15", "--no-gate")
            measured = "  ".join(f"{phase} {_gb(t['peak_rss_bytes'])}"
                                 for phase, t in built["phases"]["export"].items())
            predicted = "  ".join(f"{phase} {value / 1e9:.2f}"
                                  for phase, value in plan["resources"]["stages"]["export"]["phases"].items())
            print(f"{name:<14}{plan['estimate']['params'] / 1e6:7.1f}M params\n  measured:  {measured}\n"
                  f"  predicted: {predicted}")


if __name__ == "__main__":
    main()
