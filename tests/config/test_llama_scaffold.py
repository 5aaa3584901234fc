"""`zoo new` for dense Llama-family configs: config.json -> recipe -> plan, round trip."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from llama_configs import REAL

from conftest import REPO, run_zoo
from zootool.config.recipe import load_recipe

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SHA = "0123456789abcdef0123456789abcdef01234567"
CASES = {"qwen3": "Qwen/Qwen3-0.6B", "llama": "meta-llama/Llama-3.2-1B", "mistral": "mistralai/Mistral-7B-v0.1"}


def upstream_config(repo: str):
    numbers = {k: v for k, v in REAL[repo].items() if k != "model_type"}
    return transformers.AutoConfig.for_model(REAL[repo]["model_type"], **numbers)


def write_config(folder: Path, repo: str) -> Path:
    config = upstream_config(repo).to_dict()
    config["_name_or_path"] = repo
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("model_type", sorted(CASES))
def test_new_round_trip(zoo_root: Path, tmp_path: Path, model_type: str):
    repo = CASES[model_type]
    config = write_config(tmp_path / "upstream", repo)
    result = run_zoo("new", "--config", str(config), "--license", "apache-2.0", "--revision", SHA,
                     "--id", f"new-{model_type}", "--json", root=zoo_root)
    assert result.returncode == 0, result.stderr
    recipe = load_recipe(Path(json.loads(result.stdout)["path"]))
    assert recipe.architecture.family == "llama" and recipe.architecture.model_type == model_type
    assert recipe.model.name == repo.split("/")[1] and recipe.defaults.kernel == "none"
    assert {"mac", "iphone", "iphone-ios18"} <= set(recipe.targets)
    plan = run_zoo("plan", f"new-{model_type}", "--target", "mac-macos15", "--json", root=zoo_root)
    assert plan.returncode == 0, plan.stderr
    summary = json.loads(plan.stdout)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(upstream_config(repo))
    assert summary["estimate"]["params"] == sum(p.numel() for p in model.parameters())
    assert summary["backend"] == "coremltools" and summary["scheme_id"] == "int8-all"


def test_new_writes_what_the_committed_dense_recipes_use(zoo_root: Path, tmp_path: Path):
    """The scaffold of Qwen3-0.6B has the committed recipe's defaults and targets (publish aside)."""
    config = write_config(tmp_path / "upstream", CASES["qwen3"])
    result = run_zoo("new", "--config", str(config), "--license", "apache-2.0", "--id", "new-qwen3", root=zoo_root)
    assert result.returncode == 0, result.stderr
    written = tomllib.loads((zoo_root / "recipes" / "new-qwen3.toml").read_text())
    committed = tomllib.loads((REPO / "recipes" / "qwen3-0.6b.toml").read_text())
    assert written["defaults"] == committed["defaults"]
    unpublished = {name: {k: v for k, v in table.items() if k != "publish"}
                   for name, table in committed["targets"].items()}
    assert written["targets"] == unpublished
    assert {table["quant"] for table in written["targets"].values()} == {"int8-all"}


def test_seven_billion_at_eight_bits_is_over_the_ios18_phone_budget(zoo_root: Path, tmp_path: Path):
    config = write_config(tmp_path / "upstream", CASES["mistral"])
    created = run_zoo("new", "--config", str(config), "--license", "apache-2.0", "--id", "big", root=zoo_root)
    assert created.returncode == 0, created.stderr
    result = run_zoo("plan", "big", "--target", "iphone-ios18", root=zoo_root)
    assert result.returncode == 3
    assert "with 'int8-all' exceeds the iphone-ios18 budget of 3.50 GB" in result.stderr


def test_a_transformers_type_without_a_family_is_not_supported_yet(zoo_root: Path, tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "granitemoehybrid", "hidden_size": 1024}))
    result = run_zoo("new", "--config", str(path), "--license", "mit", "--hub", "a/b", root=zoo_root)
    assert result.returncode == 11, result.stderr
    assert "model_type 'granitemoehybrid' (Granite 4.0-H hybrid" in result.stderr
    assert "is not a family this zoo builds yet" in result.stderr and "src/zootool/arch/families/" in result.stderr
    assert "Traceback" not in result.stderr


def test_qwen3_plan_counts_like_transformers(zoo_root: Path):
    """The issue's acceptance: `zoo plan qwen3-0.6b --target iphone` shows transformers' count and a verdict."""
    result = run_zoo("plan", "qwen3-0.6b", "--target", "iphone", root=zoo_root)
    assert result.returncode == 0, result.stderr
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(upstream_config("Qwen/Qwen3-0.6B"))
    assert f"{sum(p.numel() for p in model.parameters()):,}" in result.stdout
    assert "-> fits" in result.stdout
