"""Build time and peak memory by stage: the tiny recipe, then larger synthetic LFM2-MoE models.

Figures, not assertions: run by hand (`make bench` or `python bench/build_bench.py`).
`--sizes` picks synthetic models by hidden size. Every bundle is one asset.
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


def synthetic_recipe(hidden: int) -> str:
    text = (REPO / "recipes" / "tiny-lfm2-moe.toml").read_text()
    ffn = hidden * 2
    moe = hidden
    replacements = {
        'id = "tiny-lfm2-moe"': f'id = "synthetic-{hidden}"',
        "hidden-size = 256": f"hidden-size = {hidden}",
        "intermediate-size = 512": f"intermediate-size = {ffn}",
        "moe-intermediate-size = 256": f"moe-intermediate-size = {moe}",
        "vocab-size = 1024": "vocab-size = 8192",
        'layer-types = ["conv", "full_attention", "conv", "full_attention"]':
            'layer-types = ["conv", "conv", "full_attention", "conv", "conv", "full_attention", "conv", "conv"]',
        "num-experts = 8": "num-experts = 16",
        "num-attention-heads = 4": f"num-attention-heads = {hidden // 64}",
        "num-key-value-heads = 2": f"num-key-value-heads = {max(hidden // 256, 1)}",
    }
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def run_build(root: Path, model: str) -> dict:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "zootool", "--root", str(root), "build", model, "--target", "mac",
         "--no-gate", "--force", "--json"],
        capture_output=True, text=True,
    )
    if result.returncode:
        raise SystemExit(f"{model} failed:\n{result.stderr}")
    summary = json.loads(result.stdout)
    summary["wall_s"] = time.perf_counter() - start
    return summary


def plan(root: Path, model: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "zootool", "--root", str(root), "plan", model, "--target", "mac",
                          "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def report(model: str, planned: dict, summary: dict) -> None:
    stages = "  ".join(f"{k} {v:.1f}s/{summary['peak_rss_mb'].get(k, 0):.0f}MB" for k, v in summary["timings"].items())
    predicted = planned["resources"]["stages"]["export"]["memory_bytes"] / 2**20
    print(f"{model:<16}{planned['estimate']['params'] / 1e6:>9.1f}M  wall {summary['wall_s']:6.1f}s  "
          f"bundle {summary['bundle_size']:>9}  [{stages}]  export predicted {predicted:.0f}MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 1536])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("recipes", "zoo", "cards"):
            shutil.copytree(REPO / name, root / name)
        print("stage figures: seconds / peak RSS so far of the build or its export child process; "
              "the plan's predicted export peak beside them")
        report("tiny-lfm2-moe", plan(root, "tiny-lfm2-moe"), run_build(root, "tiny-lfm2-moe"))
        for hidden in args.sizes:
            model = f"synthetic-{hidden}"
            (root / "recipes" / f"{model}.toml").write_text(synthetic_recipe(hidden))
            report(model, plan(root, model), run_build(root, model))


if __name__ == "__main__":
    main()
