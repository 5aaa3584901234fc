"""`zoo new`: config.json -> recipe -> plan, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import invoke_zoo, run_zoo
from zootool.arch.registry import known_model_types
from zootool.config.recipe import load_recipe

transformers = pytest.importorskip("transformers")

SHA = "0123456789abcdef0123456789abcdef01234567"


def write_config(folder: Path, **changes) -> Path:
    config = transformers.Lfm2MoeConfig(
        num_hidden_layers=6, layer_types=["conv", "conv", "full_attention", "conv", "full_attention", "conv"],
        hidden_size=512, vocab_size=4096, num_experts=8, **changes,
    ).to_dict()
    config["_name_or_path"] = "SomeOrg/Some-MoE-1B"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_new_round_trip(zoo_root: Path, tmp_path: Path):
    config = write_config(tmp_path / "upstream")
    result = run_zoo("new", "--config", str(config), "--license", "apache-2.0", "--revision", SHA,
                     "--json", root=zoo_root)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["id"] == "some-moe-1b"
    recipe = load_recipe(Path(written["path"]))
    assert recipe.model.source.hub == "SomeOrg/Some-MoE-1B" and recipe.model.source.revision == SHA
    assert recipe.architecture.to_hf()["layer_types"] == json.loads(config.read_text())["layer_types"]
    plan = run_zoo("plan", "some-moe-1b", "--target", "mac", "--json", root=zoo_root)
    assert plan.returncode == 0, plan.stderr
    model = transformers.Lfm2MoeForCausalLM(transformers.Lfm2MoeConfig(**json.loads(config.read_text())))
    assert json.loads(plan.stdout)["estimate"]["params"] == sum(p.numel() for p in model.parameters())


def test_new_refuses_to_overwrite(zoo_root: Path, tmp_path: Path):
    config = write_config(tmp_path / "upstream")
    result = run_zoo("new", "--config", str(config), "--license", "mit", "--id", "tiny-lfm2-moe", root=zoo_root)
    assert result.returncode == 2
    assert "a recipe with this id exists" in result.stderr
    assert "schema = 1" in (zoo_root / "recipes" / "tiny-lfm2-moe.toml").read_text()


@pytest.mark.parametrize("args,message", [
    (["--license", "gpl-9"], "unknown license 'gpl-9'"),
    (["--license", "gpl-9"], "or add zoo/licenses/gpl-9.toml (keys: name, hub-license"),
    (["--license", "mit", "--id", "../x"], "'../x' is not a valid model id"),
])
def test_new_rejects_bad_input(zoo_root: Path, tmp_path: Path, args, message):
    config = write_config(tmp_path / "upstream")
    result = run_zoo("new", "--config", str(config), *args, root=zoo_root)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_new_unknown_family_lists_known(zoo_root: Path, tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "gpt_neox"}))
    result = run_zoo("new", "--config", str(path), "--license", "mit", "--hub", "a/b", root=zoo_root)
    assert result.returncode == 11
    assert "model_type 'gpt_neox' is not a family this zoo builds yet" in result.stderr
    assert ", ".join(known_model_types()) in result.stderr.replace("\n", " ").replace("  ", " ")
    assert "src/zootool/arch/families/" in result.stderr


def test_new_refuses_a_layer_count_that_disagrees_with_layer_types(zoo_root: Path, tmp_path: Path):
    config = write_config(tmp_path / "upstream")
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "num_hidden_layers": len(data["layer_types"]) + 1}))
    result = invoke_zoo("new", "--config", str(config), "--license", "mit", root=zoo_root)
    assert result.exit_code == 2, result.stdout
    assert f"{config}: transformers refuses this lfm2_moe config" in result.stderr
    assert "num_hidden_layers" in result.stderr
    assert not (zoo_root / "recipes" / "some-moe-1b.toml").exists()
