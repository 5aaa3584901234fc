"""Gate time on the tiny model, and how it grows with scored positions and model size.

Figures, not assertions. Builds each model once (--no-gate), then times the gate in-process
for several position counts: oracle (transformers fp32), fp16-ceiling export + run, candidate run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from build_bench import synthetic_recipe  # noqa: E402


def build(root: Path, model: str) -> None:
    subprocess.run([sys.executable, "-m", "zootool", "--root", str(root), "build", model, "--target", "mac",
                    "--no-gate", "--json"], capture_output=True, check=True)


def time_gate(root: Path, model: str, positions: int) -> tuple[float, str]:
    from zootool.fetch.hub import fetch_checkpoint
    from zootool.gate.run import run_gate
    from zootool.plan.resolve import resolve
    from zootool.config.recipe import GateSettings, Settings
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo

    zoo = Zoo(root)
    recipe, path = get(zoo, model)
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path), overrides=Settings(gate=GateSettings(positions=positions)))
    checkpoint = fetch_checkpoint(plan, root / ".zoo-cache", zoo.data_dir / "licenses")
    bundle = root / "build" / model / "mac"
    manifest = json.loads((bundle / "manifest.json").read_text())
    model_dir = bundle / manifest["model_dir"]
    start = time.perf_counter()
    transcript = run_gate(plan, checkpoint, model_dir, root / f"{model}-{positions}.gate.json")
    return time.perf_counter() - start, transcript.line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, nargs="*", default=[11, 41, 81])
    parser.add_argument("--sizes", type=int, nargs="*", default=[512])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("recipes", "zoo", "cards"):
            shutil.copytree(REPO / name, root / name)
        models = ["tiny-lfm2-moe"]
        for hidden in args.sizes:
            (root / "recipes" / f"synthetic-{hidden}.toml").write_text(synthetic_recipe(hidden))
            models.append(f"synthetic-{hidden}")
        for model in models:
            build(root, model)
            for positions in args.positions:
                seconds, line = time_gate(root, model, positions)
                print(f"{model:<16} positions={positions:<4} gate {seconds:6.1f} s  "
                      f"({seconds / positions:.2f} s/position)  {line}")


if __name__ == "__main__":
    main()
