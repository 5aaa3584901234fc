"""The flagship at full size on this machine: generate, build for mac and iphone, gate.

Figures, not assertions (CI does not run it): `python bench/flagship_scale.py WORK_DIR
[--steps generate,mac,iphone,gate,gate-iphone]`. WORK_DIR needs ~60 GB free: a 17 GB bf16 checkpoint of
LFM2.5-8B-A1B (random weights of the real architecture) and two bundles. Each step runs
`zoo` in its own process under /usr/bin/time -v (peak RSS of the largest process) and prints
wall time, peak RSS, the largest anonymous RSS (sampled; what the plan predicts) and, for builds,
the built size against the plan's estimate, the time of each build stage (the iphone export stage holds the int4km k-means) and, inside the export,
each phase's wall time and the cores it kept busy (load, quantize, torch.export, convert, save).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "lfm2.5-8b-a1b"
# The recipe's Hub source is not pinned yet; --weights supplies the checkpoint and this
# placeholder commit stands in for the pin the recipe lacks (no download happens): it is
# written into the bench's copy of the recipe, so the build and the gate resolve one plan.
PLACEHOLDER_SHA = "0" * 40


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """(result, wall seconds, peak RSS GB of 10^9 bytes as the plan predicts, peak anonymous RSS GB) of one
    command; prints its CPU use (all processes)."""
    start = time.perf_counter()
    process = subprocess.Popen(["/usr/bin/time", "-v", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    sampler = AnonymousPeak(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", stderr)
    print(f"  cpu {cpu.group(1) if cpu else '?'}% of one core over the wall time ({' '.join(command[3:6])})")
    peak = int(match.group(1)) * 1024 / 1e9 if match else float("nan")  # time -v counts KiB
    return result, wall, peak, sampler.peak_bytes / 1e9


class AnonymousPeak(threading.Thread):
    """The largest anonymous resident memory (``RssAnon``) of any process under ``root_pid``, sampled every
    0.1 s until ``root_pid`` ends. Peak RSS also counts file-backed pages (the converter writes the weights
    out through them), which the kernel can write back and drop under pressure; the plan predicts this one."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.peak_bytes = root_pid, 0

    def run(self) -> None:
        while Path(f"/proc/{self.root_pid}").exists():
            for pid in self._descendants():
                self.peak_bytes = max(self.peak_bytes, _anonymous_bytes(pid))
            time.sleep(0.1)

    def _descendants(self) -> list[int]:
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = [], [self.root_pid]
        while frontier:
            found += frontier
            frontier = [pid for pid, parent in parents.items() if parent in frontier]
        return found


def _anonymous_bytes(pid: int) -> int:
    try:
        match = re.search(r"^RssAnon:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return 0
    return int(match.group(1)) * 1024 if match else 0


def zoo(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "zootool", "--root", str(root), *args]


def pin(recipe: Path) -> None:
    text = recipe.read_text()
    source = 'source = { hub = "LiquidAI/LFM2.5-8B-A1B" }'
    assert source in text, "the flagship recipe's source line changed; update the bench"
    recipe.write_text(text.replace(source, f'source = {{ hub = "LiquidAI/LFM2.5-8B-A1B", revision = "{PLACEHOLDER_SHA}" }}'))


def generate(root: Path, checkpoint: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from zootool.config.registry import get; from zootool.config.zoo_data import Zoo;"
        "from zootool.fetch.synthetic import generate_checkpoint;"
        f"r, _ = get(Zoo(Path({str(root)!r})), {MODEL!r});"
        f"generate_checkpoint(Path({str(checkpoint)!r}), r.architecture.to_hf(), 0)"
    )
    result, wall, peak, _ = timed([sys.executable, "-c", code])
    shutil.copyfile(REPO / "zoo" / "licenses" / "mit.txt", checkpoint / "LICENSE")  # a stand-in text
    print(f"generate   wall {wall:7.1f} s  peak RSS {peak:5.2f} GB  rc {result.returncode}")


def predicted(root: Path, target: str, stage: str) -> float:
    """The plan's predicted peak memory of ``stage``, GB (footprint)."""
    out = subprocess.run(zoo(root, "plan", MODEL, "--target", target, "--json"), capture_output=True, text=True).stdout
    return json.loads(out)["resources"]["stages"][stage]["memory_bytes"] / 1e9


def build(root: Path, checkpoint: Path, target: str) -> None:
    # --ignore-resources: this measures the peak, also where the pre-flight would refuse the build.
    result, wall, peak, anonymous = timed(zoo(root, "build", MODEL, "--target", target, "--weights", str(checkpoint),
                                   "--no-gate", "--force", "--ignore-resources",
                                   "--json"))
    line = (f"build {target:<6} wall {wall:7.1f} s  peak RSS {peak:5.2f} GB, anonymous {anonymous:5.2f} GB "
            f"(export predicted {predicted(root, target, 'export'):5.2f} GB)  rc {result.returncode}")
    if result.returncode:
        print(line + "  " + result.stderr.strip().splitlines()[-1][:300])
        return
    summary = json.loads(result.stdout)
    manifest = json.loads((Path(summary["bundle"]) / "manifest.json").read_text())
    size, estimate = manifest["size"]["model_bytes"], manifest["size"]["estimated_bytes"]
    stages = "  ".join(f"{name} {seconds:.0f}s" for name, seconds in summary["timings"].items())
    print(f"{line}  size {size:,} B vs estimate {estimate:,} B ({(size - estimate) / estimate:+.3%})  [{stages}]")
    for stage, phases in summary["phases"].items():  # where the export's time went, and how many cores it used
        print(f"  {stage}: " + ", ".join(f"{name} {t['seconds']:.1f} s at {t['cores']:.2f} cores"
                                         + (f" (peak {t['peak_rss_bytes'] / 1e9:.2f} GB)" if t["peak_rss_bytes"] else "")
                                         for name, t in phases.items()))


def gate(root: Path, checkpoint: Path, target: str) -> None:
    result, wall, peak, anonymous = timed(zoo(root, "gate", MODEL, "--target", target, "--weights", str(checkpoint), "--json"))
    verdict = json.loads(result.stdout)["line"] if result.returncode in (0, 6) else result.stderr.strip()[-300:]
    print(f"gate {target:6} wall {wall:7.1f} s  peak RSS {peak:5.2f} GB, anonymous {anonymous:5.2f} GB  rc {result.returncode}  {verdict}")
    if result.returncode in (0, 6):
        print(f"  candidate runtime: {json.loads(result.stdout)['candidate_runtime']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--steps", default="generate,mac,iphone,gate,gate-iphone")
    args = parser.parse_args()
    steps = args.steps.split(",")
    checkpoint = args.work_dir / "checkpoint"
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        root = Path(tmp)
        for name in ("recipes", "zoo", "cards"):
            shutil.copytree(REPO / name, root / name)
        pin(root / "recipes" / f"{MODEL}.toml")
        if "generate" in steps or not checkpoint.is_dir():
            generate(root, checkpoint)
        for target in ("mac", "iphone"):
            if target in steps:
                build(root, checkpoint, target)
        for step, target in (("gate", "mac"), ("gate-iphone", "iphone")):
            if step in steps:
                gate(root, checkpoint, target)


if __name__ == "__main__":
    main()
