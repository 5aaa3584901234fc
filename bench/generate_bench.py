"""Wall time and peak memory of generating a full-size synthetic checkpoint (default: the flagship).

Figures, not assertions: `python bench/generate_bench.py OUT_DIR [--recipe lfm2.5-8b-a1b]`.
The checkpoint of LFM2.5-8B-A1B is about 17 GB of bf16; OUT_DIR is left for you to delete.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--recipe", default="lfm2.5-8b-a1b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-std", type=float, default=0.02)
    parser.add_argument("--max-shard-size", default="5GB")
    args = parser.parse_args()

    from zootool.config.registry import get
    from zootool.fetch.synthetic import generate_checkpoint
    from zootool.config.zoo_data import Zoo

    recipe, _ = get(Zoo(REPO), args.recipe)
    config = recipe.architecture.to_hf() | {"initializer_range": args.init_std}
    params = sum(spec.numel for spec in recipe.architecture.tensors())
    before = peak_rss()
    start = time.perf_counter()
    generate_checkpoint(args.out_dir, config, args.seed, max_shard_size=args.max_shard_size)
    wall = time.perf_counter() - start
    report(args, params, wall, before)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def report(args: argparse.Namespace, params: int, wall: float, before: int) -> None:
    files = sorted(args.out_dir.glob("*.safetensors"))
    size = sum(path.stat().st_size for path in files)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"recipe            {args.recipe} ({params / 1e9:.2f}B parameters)")
    print(f"output            {len(files)} safetensors files, {size / 1e9:.2f} GB in {args.out_dir}")
    print(f"wall time         {wall:.1f} s ({size / wall / 1e6:.0f} MB/s, {params / wall / 1e6:.0f} M params/s)")
    print(f"cpu time          {usage.ru_utime + usage.ru_stime:.1f} s (user + system, whole process)")
    print(f"peak RSS          {peak_rss() / 2**20:.0f} MiB"
          f" (before generating, torch not yet imported: {before / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
