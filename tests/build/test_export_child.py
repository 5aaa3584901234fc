"""`zoo build` with the export in a child process: crashes become exit 5 with the log's tail, typed
errors keep their exit code, a killed build takes its export along, and the bundle is the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_zoo, tiny_recipe_checkpoint

pytest.importorskip("coreai_torch")

MODEL = "tiny-lfm2-moe"
CRASH_ENV = "ZOO_TEST_EXPORT_CRASH"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny recipe's checkpoint (with its LICENSE), generated once for this module."""
    return tiny_recipe_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", MODEL)


def leftovers(root: Path, target: str = "mac") -> list[str]:
    """Bundles and partial (staging, swapped-out) directories of ``target``; logs and records aside."""
    folder = root / "build" / MODEL
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return [n for n in names if n == target or n.startswith((f".{target}.partial-", f".{target}.old-"))]


def build(root: Path, checkpoint: Path, *args: str, env: dict | None = None, target: str = "mac"):
    return run_zoo("build", MODEL, "--target", target, "--weights", str(checkpoint), *args, root=root, env=env)


@pytest.mark.parametrize("crash, how", [
    ("abort", "aborted (SIGABRT, signal 6)"),
    ("kill", "was killed by SIGKILL (signal 9"),
    ("exit", "exited with code 3"),
])
def test_a_crashing_export_is_exit_5_with_the_log_tail(zoo_root: Path, checkpoint: Path, crash: str, how: str):
    result = build(zoo_root, checkpoint, "--no-gate", env={CRASH_ENV: crash})
    assert result.returncode == 5, result.stderr
    assert f"error: the export process {how}" in result.stderr and "Traceback" not in result.stderr
    log = zoo_root / "build" / MODEL / "mac.log"
    written = f"[{CRASH_ENV}={crash}] simulated crash of the export process"  # by the child, on its fd 2
    assert written in log.read_text()
    assert f"last lines of {log}:" in result.stderr and written in result.stderr
    assert ("the disk is full (No space left on device)" in result.stderr) == (crash == "abort")
    assert leftovers(zoo_root) == []


def test_a_zoo_error_in_the_export_keeps_its_type(zoo_root: Path, checkpoint: Path):
    kernels = zoo_root / "zoo" / "kernels.toml"
    # Let the plan through, so the refusal comes from the export itself (backends.coreai).
    kernels.write_text(kernels.read_text().replace('schemes = ["sym8"]', 'schemes = ["sym8", "int4km"]'))
    result = build(zoo_root, checkpoint, "--no-gate", "--quant", "int4km")
    assert result.returncode == 2, result.stderr
    assert "kernel gather_qmm reads sym8 expert weights; scheme 'int4km' stores them as kmeans 4-bit" in result.stderr
    assert "Traceback" not in result.stderr and "export process" not in result.stderr
    assert leftovers(zoo_root) == []


@pytest.mark.slow
def test_child_export_gives_the_bundle_an_in_process_export_gives(zoo_root: Path, checkpoint: Path, tmp_path: Path):
    import numpy as np

    from zootool.backends.coreai.export import read_metadata, storage_summary
    from zootool.gate.engine import teacher_forced_logits
    from zootool.build.export import export_model
    from zootool.bundle.manifest import Manifest
    from zootool.bundle.package import package_model_dir
    from zootool.plan.recorded import plan_of
    from zootool.config.zoo_data import Zoo

    result = build(zoo_root, checkpoint, "--no-gate", "--json", target="iphone")
    assert result.returncode == 0, result.stderr
    bundle = zoo_root / "build" / MODEL / "iphone"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert run_zoo("verify", str(bundle), root=zoo_root).returncode == 0
    plan = plan_of(Zoo(zoo_root), Manifest.model_validate(manifest), bundle)
    child_dir = bundle / manifest["model_dir"]
    stem = child_dir.name
    here_dir = tmp_path / stem
    package_model_dir(plan, checkpoint, here_dir, export_model(plan, checkpoint, here_dir, stem))
    child_model, here_model = child_dir / f"{stem}.aimodel", here_dir / f"{stem}.aimodel"
    assert storage_summary(child_model) == storage_summary(here_model)
    assert read_metadata(child_model) == read_metadata(here_model)
    assert json.loads((child_dir / "metadata.json").read_text()) == json.loads((here_dir / "metadata.json").read_text())
    tokens = list(range(3, 40))
    assert np.array_equal(teacher_forced_logits(child_dir, tokens), teacher_forced_logits(here_dir, tokens))


    # The child's phase times come back with its result: they add up to no more than the stage.
    summary = json.loads(result.stdout)
    phases = summary["phases"]["export"]
    assert list(phases)[:2] == ["load", "quantize"] and {"export", "convert", "save", "metadata"} <= set(phases)
    assert sum(phase["seconds"] for phase in phases.values()) <= summary["timings"]["export"]
    assert all(phases[name]["cpu_seconds"] > 0 for name in ("load", "quantize", "export", "convert"))


@pytest.mark.slow
def test_resource_checks_run_only_for_stages_that_will_run(zoo_root: Path, checkpoint: Path):
    assert build(zoo_root, checkpoint, "--no-gate").returncode == 0
    bundle = zoo_root / "build" / MODEL / "mac"
    small = {"ZOO_AVAILABLE_MEMORY_BYTES": "1000"}
    cached = build(zoo_root, checkpoint, "--no-gate", "--json", env=small)
    assert cached.returncode == 0 and json.loads(cached.stdout)["cached"] is True  # nothing to run: no check
    stale = build(zoo_root, checkpoint, env=small)  # gated: a new build key, refused as the export starts
    assert stale.returncode == 12 and "error: export needs about" in stale.stderr, stale.stderr
    assert "Traceback" not in stale.stderr and "conversion log" not in stale.stderr
    forced = build(zoo_root, checkpoint, "--no-gate", "--force", env=small)  # refused before the lock
    assert forced.returncode == 12 and "needs about" in forced.stderr
    assert leftovers(zoo_root) == ["mac"]
    assert run_zoo("verify", str(bundle), root=zoo_root).returncode == 0  # the previous bundle is intact


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from /proc")
def test_a_killed_build_takes_its_export_child_along(zoo_root: Path, checkpoint: Path):
    args = [sys.executable, "-m", "zootool", "--root", str(zoo_root), "build", MODEL, "--target", "mac",
            "--weights", str(checkpoint), "--no-gate"]
    env = {**os.environ, CRASH_ENV: "hang"}
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (children := _children(process.pid)) and time.time() < deadline:
            time.sleep(0.2)
        assert children, "the build never started its export process"
        # The request sits in the staging directory, which the next build clears: a kill leaks nothing.
        assert list((zoo_root / "build" / MODEL).glob(".mac.partial-*/zoo-export-*/request.pkl"))
        process.kill()  # the build process alone, as the out-of-memory killer would, maybe as the child starts
        process.wait()
        deadline = time.time() + 60
        while any(_running(pid) for pid in children) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in children), "the export outlived its build"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever of this build's session is left
        except ProcessLookupError:
            pass
