"""`zoo build` failure paths: nothing that looks like a finished bundle is ever left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_zoo, tiny_recipe_checkpoint

pytest.importorskip("coreai_torch")
pytest_plugins = ["conftest_hub"]

MODEL = "tiny-lfm2-moe"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny recipe's checkpoint (with its LICENSE), generated once for this module."""
    return tiny_recipe_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", MODEL)


def leftovers(root: Path, target: str = "mac") -> list[str]:
    folder = root / "build" / MODEL
    return sorted(p.name for p in folder.iterdir() if p.name != f"{target}.log") if folder.exists() else []


def weights_copy(checkpoint: Path, dest: Path) -> Path:
    shutil.copytree(checkpoint, dest)
    return dest


def test_missing_custom_license_text_is_refused_before_conversion(zoo_root: Path, checkpoint: Path, tmp_path: Path):
    """A custom license (here lfm1.0) has no standard text the zoo could ship: the upstream's file is needed,
    and its absence is bad input (exit 2), not a failed download, even for a local folder."""
    recipe = zoo_root / "recipes" / f"{MODEL}.toml"
    recipe.write_text(recipe.read_text().replace('license = "mit"', 'license = "lfm1.0"'))
    weights = weights_copy(checkpoint, tmp_path / "w")
    (weights / "LICENSE").unlink()
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(weights), root=zoo_root)
    assert result.returncode == 2, result.stderr
    assert "LICENSE: the license text (LFM Open License v1.0) is missing, and 'lfm1.0' is a custom license" \
        in result.stderr
    assert "put the upstream's LICENSE in the checkpoint folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(zoo_root) == []


@pytest.mark.slow
def test_a_standard_license_without_upstream_text_ships_the_zoos_copy(zoo_root: Path, checkpoint: Path,
                                                                       tmp_path: Path):
    """The card declares MIT, no LICENSE file: the bundle ships zoo/licenses/mit.txt and says so."""
    import json

    weights = weights_copy(checkpoint, tmp_path / "w")
    (weights / "LICENSE").unlink()
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(weights), "--no-gate", root=zoo_root)
    assert result.returncode == 0, result.stderr
    bundle = zoo_root / "build" / MODEL / "mac"
    shipped = (bundle / "LICENSE").read_text()
    assert shipped.startswith("MIT License: the zoo's copy of its standard text.\nThe checkpoint declares this")
    assert shipped.endswith((zoo_root / "zoo" / "licenses" / "mit.txt").read_text())
    assert json.loads((bundle / "manifest.json").read_text())["license_text"] == "zoo"
    assert "copied from the zoo's copy of the standard text (zoo/licenses/mit.txt)" in (bundle / "README.md").read_text()
    assert run_zoo("verify", str(bundle), root=zoo_root).returncode == 0


def test_truncated_safetensors_is_a_fetch_error(zoo_root: Path, checkpoint: Path, tmp_path: Path):
    weights = weights_copy(checkpoint, tmp_path / "w")
    data = (weights / "model.safetensors").read_bytes()
    (weights / "model.safetensors").write_bytes(data[: len(data) // 2])
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(weights), "--no-gate", root=zoo_root)
    assert result.returncode == 9, result.stderr
    assert "model.safetensors" in result.stderr
    log = zoo_root / "build" / MODEL / "mac.log"
    assert ("conversion log:" in result.stderr) == (log.is_file() and log.stat().st_size > 0)
    assert leftovers(zoo_root) == []


def test_checkpoint_that_contradicts_the_recipe_is_refused(zoo_root: Path, checkpoint: Path, tmp_path: Path):
    weights = weights_copy(checkpoint, tmp_path / "w")
    config = (weights / "config.json").read_text().replace('"num_experts": 8', '"num_experts": 16')
    (weights / "config.json").write_text(config)
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(weights), root=zoo_root)
    assert result.returncode == 2
    assert "num-experts: recipe 8, checkpoint 16" in result.stderr


def test_unpinned_hub_source_is_refused_before_download(zoo_root: Path):
    result = run_zoo("build", "lfm2.5-8b-a1b", "--target", "mac", root=zoo_root)
    assert result.returncode == 2
    assert "LiquidAI/LFM2.5-8B-A1B has no pinned revision" in result.stderr


@pytest.mark.slow
def test_actual_size_over_budget_keeps_nothing(zoo_root: Path, checkpoint: Path):
    platforms = zoo_root / "zoo" / "platforms.toml"
    # Between the weights estimate (7.32 MB) and the real bundle (about 7.46 MB).
    platforms.write_text(platforms.read_text().replace("budget-bytes = 48_000_000_000", "budget-bytes = 7_400_000"))
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(checkpoint), "--no-gate", root=zoo_root)
    assert result.returncode == 3, result.stderr
    assert "the built bundle is" in result.stderr and "nothing was kept" in result.stderr
    assert leftovers(zoo_root) == []


def test_a_held_lock_refuses_a_second_build(zoo_root: Path):
    folder = zoo_root / "build" / MODEL
    folder.mkdir(parents=True)
    (folder / ".mac.lock").write_text(str(os.getpid()))  # this test process is alive
    result = run_zoo("build", MODEL, "--target", "mac", "--no-gate", root=zoo_root)
    assert result.returncode == 10
    assert f"another build (pid {os.getpid()})" in result.stderr


@pytest.mark.slow
def test_killed_build_leaves_no_bundle_and_the_next_build_recovers(zoo_root: Path, checkpoint: Path):
    args = [sys.executable, "-m", "zootool", "--root", str(zoo_root), "build", MODEL, "--target", "mac",
            "--weights", str(checkpoint), "--no-gate"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = zoo_root / "build" / MODEL
    deadline = time.time() + 120
    while not list(folder.glob(".mac.partial-*")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(folder.glob(".mac.partial-*")), "the build never reached its staging directory"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (folder / "mac").exists()
    assert (folder / ".mac.lock").exists()  # stale: its holder is dead
    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(checkpoint), "--no-gate", root=zoo_root)
    assert result.returncode == 0, result.stderr
    assert leftovers(zoo_root) == ["mac"]
    assert run_zoo("verify", str(folder / "mac"), root=zoo_root).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("pin", ["recipe", "command line"])
def test_pinned_hub_source_downloads_through_huggingface_hub(zoo_root: Path, checkpoint: Path, hub, tmp_path: Path,
                                                             pin: str):
    """The real snapshot_download path, against the local Hub look-alike."""
    import json

    from huggingface_hub import HfApi

    from conftest_hub import WRITE_TOKEN

    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("zoo-org/tiny-upstream")
    commit = api.upload_folder(repo_id="zoo-org/tiny-upstream", folder_path=str(checkpoint)).oid
    pinned = f', revision = "{commit}"' if pin == "recipe" else ""
    recipe = zoo_root / "recipes" / f"{MODEL}.toml"
    recipe.write_text(recipe.read_text().replace(
        'source = { generate = "random", seed = 0, init-std = 0.1 }',
        f'source = {{ hub = "zoo-org/tiny-upstream"{pinned} }}',
    ))
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": WRITE_TOKEN, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home")}
    extra = ["--revision", commit] if pin == "command line" else []
    result = run_zoo("build", MODEL, "--target", "mac", "--no-gate", "--json", *extra, root=zoo_root, env=env)
    assert result.returncode == 0, result.stderr
    snapshots = list((tmp_path / "hf-home").rglob(f"snapshots/{commit}/model.safetensors"))
    assert snapshots, "the checkpoint did not come through the huggingface_hub cache"
    bundle = zoo_root / "build" / MODEL / "mac"
    card = (bundle / "README.md").read_text()
    assert "base_model: zoo-org/tiny-upstream" in card and commit in card
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source"]["revision"] == commit
    app = json.loads((bundle / manifest["model_dir"] / "metadata.json").read_text())
    assert app["source"]["hf_revision"] == commit
    assert manifest["overrides"] == ({"source.revision": commit} if pin == "command line" else {})


@pytest.mark.slow
def test_build_ships_one_asset_the_engines_can_load(zoo_root: Path, checkpoint: Path):
    import json

    result = run_zoo("build", MODEL, "--target", "mac", "--weights", str(checkpoint), "--no-gate", "--json",
                     root=zoo_root)
    assert result.returncode == 0, result.stderr
    bundle = zoo_root / "build" / MODEL / "mac"
    manifest = json.loads((bundle / "manifest.json").read_text())
    app = json.loads((bundle / manifest["model_dir"] / "metadata.json").read_text())
    assert app["assets"] == {"main": "Tiny-LFM2-MoE-sym8.aimodel"}
    assert app["language"]["function_map"] == {"main": ["main"]} and app["language"]["embedded_tokenizer"] is True
    assert app["language"]["states"] == {"keyCache": "kv_cache", "valueCache": "kv_cache", "convState": "fixed"}
    assert [p.name for p in (bundle / manifest["model_dir"]).glob("*.aimodel")] == ["Tiny-LFM2-MoE-sym8.aimodel"]
    size = manifest["size"]  # one asset: the tied head is the embedding, stored once
    assert abs(size["estimated_bytes"] - size["model_bytes"]) / size["model_bytes"] < 0.03
    assert run_zoo("verify", str(bundle), root=zoo_root).returncode == 0
    refused = run_zoo("build", MODEL, "--target", "mac", "--chunks", "2", root=zoo_root)
    assert refused.returncode == 2 and "No such option" in refused.stderr


@pytest.mark.slow
def test_gate_reuses_the_build_checkpoint_and_the_fp16_ceiling(zoo_root: Path, checkpoint: Path):
    """`zoo gate` after `zoo build --weights DIR` needs no --weights and generates nothing;
    the fp16 ceiling it needs is the one the build cached (it does not depend on the scheme)."""
    import json

    built = run_zoo("build", MODEL, "--target", "mac", "--weights", str(checkpoint), "--json", root=zoo_root)
    assert built.returncode == 0, built.stderr
    cached = list((zoo_root / ".zoo-cache" / "fp16-ceiling").glob("*.json"))
    assert len(cached) == 1
    side = json.loads(cached[0].read_text())
    cached[0].write_text(json.dumps({**side, "runtime": "from the ceiling cache"}))
    gated = run_zoo("gate", MODEL, "--target", "mac", "--json", root=zoo_root)
    assert gated.returncode == 0, gated.stderr
    transcript = json.loads(Path(json.loads(gated.stdout)["transcript"]).read_text())
    assert transcript["fp16"]["runtime"] == "from the ceiling cache"
    assert transcript["fp16"]["tokens"] == side["tokens"]
    assert not (zoo_root / ".zoo-cache" / "checkpoints").exists()  # the recorded --weights folder was reused
