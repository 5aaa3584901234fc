"""Cold start of `zoo` commands against the import floor `python -c "import typer, rich, pydantic"`.

Prints the median of RUNS runs of each command, interleaved so that load from other
processes falls on all of them alike, and each command's ratio to the floor. The
goal for `zoo list` is at most 1.5x the floor. A bare Typer app (one command, one
flag, nothing else) is printed too: the least any Typer command costs on this machine.

Children run with bytecode caching on (and a warm-up run first), as an installed
zootool runs: PYTHONDONTWRITEBYTECODE would make every run recompile zootool.

Where the time went, and the figures (2 shared, loaded cores; median of 15 interleaved runs;
x floor as wall / cpu):
- A bare Typer app costs 1.80 / 1.82x. Not a TypeAdapter per parse: Typer builds one
  lazily per parameter object, but also for a parameter that was not given (value None,
  which it then passes through untouched). In the bare app those are the two ``--help``
  options, and building their adapter imports ``typer._adapters`` and with it pydantic's
  TypeAdapter, schema and plugin machinery (importlib.metadata, email, ...). The same app
  on zootool's group, which defers that to a value given (zootool/lazy_coercion.py): 0.83 / 0.84x.
- ``zoo list`` before: 2.70 / 2.73x (Typer's adapters, then the recipe and zoo-data pydantic
  models built and validated, 12 plans resolved, Rich). It now answers from
  ``.zoo-cache/list.json`` while the recipes, zoo data and zootool's code are unchanged:
  1.32 / 1.33x (1.26 / 1.26x on a quieter machine), ``--json`` 0.85 / 0.90x (no pydantic
  import at all). The run that resolves and writes the cache (the first after a change):
  2.62 / 2.63x.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
FLOOR = "import typer, rich, pydantic"
BARE_TYPER = """
import typer
app = typer.Typer(add_completion=False{cls})
@app.callback()
def main(verbose: bool = False): pass
@app.command("list")
def list_(json: bool = False): print("x")
app()
"""
# The same app on zootool's group, whose parameters build Typer's pydantic coercion only
# for a value given (zootool/lazy_coercion.py).
ZOO_GROUP = ("from zootool.cli.app import ZooGroup\n", ", cls=ZooGroup")
LIST_CACHE = REPO / ".zoo-cache" / "list.json"


def bare_apps(folder: Path) -> tuple[Path, Path]:
    plain, on_zoo_group = folder / "bare_typer.py", folder / "bare_typer_zoo_group.py"
    plain.write_text(BARE_TYPER.format(cls=""))
    on_zoo_group.write_text(ZOO_GROUP[0] + BARE_TYPER.format(cls=ZOO_GROUP[1]))
    return plain, on_zoo_group


def commands(plain: Path, on_zoo_group: Path) -> dict[str, list[str]]:
    zoo = [sys.executable, "-m", "zootool"]
    return {
        "import floor": [sys.executable, "-c", FLOOR],
        "bare typer app": [sys.executable, str(plain), "list"],
        "  on ZooGroup": [sys.executable, str(on_zoo_group), "list"],
        "zoo --help": [*zoo, "--help"],
        "zoo list": [*zoo, "list"],
        "zoo list --json": [*zoo, "list", "--json"],
        UNCACHED: [*zoo, "list"],
    }


# Run with the list cache removed first: the first run after a recipe, zoo data or code change.
UNCACHED = "  cache miss"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def timed(name: str, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; CPU time moves less with other processes' load."""
    if name == UNCACHED:
        LIST_CACHE.unlink(missing_ok=True)
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(argvs: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    env = child_env()
    for argv in argvs.values():  # warm-up: write bytecode, fill the OS file cache
        subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=True)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in argvs}
    for _ in range(runs):
        for name, argv in argvs.items():
            samples[name].append(timed(name, argv, env))
    return {name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
            for name, values in samples.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = medians(commands(*bare_apps(Path(folder))), RUNS)
    wall_floor, cpu_floor = results["import floor"]
    print(f"median of {RUNS} runs; floor = python -c {FLOOR!r}")
    print(f"{'command':<18}{'wall ms':>9}{'x floor':>9}{'cpu ms':>9}{'x floor':>9}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<18}{wall * 1000:>9.1f}{wall / wall_floor:>9.2f}{cpu * 1000:>9.1f}{cpu / cpu_floor:>9.2f}")
    for name in ("zoo list", UNCACHED):
        wall, cpu = results[name]
        label = name.strip() if name == UNCACHED else "cached"
        print(f"zoo list ({label}) / import floor = {wall / wall_floor:.2f} wall, {cpu / cpu_floor:.2f} cpu"
              " (goal <= 1.5)")


if __name__ == "__main__":
    main()
