"""Cold start of `zoo --help` and `zoo list` against `python -c pass` (median of N runs)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 7


def median_seconds(argv: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    baseline = median_seconds([sys.executable, "-c", "pass"])
    print(f"{'command':<22}{'median s':>10}{'over python':>14}")
    print(f"{'python -c pass':<22}{baseline:>10.3f}{0:>14.3f}")
    for args in (["--help"], ["list"], ["list", "--json"]):
        seconds = median_seconds([sys.executable, "-m", "zootool", *args])
        print(f"{'zoo ' + ' '.join(args):<22}{seconds:>10.3f}{seconds - baseline:>14.3f}")


if __name__ == "__main__":
    main()
