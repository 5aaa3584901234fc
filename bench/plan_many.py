"""`zoo plan` over 50 generated recipes: resolve time per plan, in one process and via the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNT = 50


def make_zoo(root: Path) -> list[str]:
    for name in ("zoo", "cards"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    (root / "recipes").mkdir()
    template = (REPO / "recipes" / "lfm2.5-8b-a1b.toml").read_text()
    ids = []
    for i in range(COUNT):
        model_id = f"bench-{i:02d}"
        text = template.replace('id = "lfm2.5-8b-a1b"', f'id = "{model_id}"')
        text = text.replace("hidden-size = 2048", f"hidden-size = {1024 + 64 * (i % 16)}")
        (root / "recipes" / f"{model_id}.toml").write_text(text)
        ids.append(model_id)
    return ids


def main() -> None:
    from zootool.plan.resolve import resolve
    from zootool.config.registry import load_all
    from zootool.config.zoo_data import Zoo

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = make_zoo(root)
        start = time.perf_counter()
        zoo = Zoo(root)
        plans = [resolve(r, t, zoo, recipe_file=str(p)) for r, p in load_all(zoo) for t in r.targets]
        in_process = time.perf_counter() - start
        print(f"in-process: {len(plans)} plans in {in_process:.3f} s ({1000 * in_process / len(plans):.2f} ms/plan)")
        start = time.perf_counter()
        for model_id in ids[:10]:
            subprocess.run([sys.executable, "-m", "zootool", "--root", str(root), "plan", model_id,
                            "--target", "mac", "--json"], capture_output=True, check=True)
        cli = (time.perf_counter() - start) / 10
        print(f"cli: zoo plan --json {cli:.3f} s per invocation (10 runs)")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zootool", "--root", str(root), "list", "--json"],
                       capture_output=True, check=True)
        print(f"cli: zoo list over {COUNT} recipes {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
