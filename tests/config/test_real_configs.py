"""`zoo new --config` on real upstream configs of every model_type: a plan with transformers' exact count."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_configs import LICENSES, NOT_YET, REAL

from conftest import copy_zoo
from zootool.config.registry import get
from zootool.config.scaffold import scaffold_config, write_recipe
from zootool.config.zoo_data import Zoo
from zootool.errors import NotImplementedFeatureError
from zootool.plan.resolve import resolve

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def zoo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_zoo(tmp_path_factory.mktemp("real-configs"))


def transformers_count(config: dict) -> int:
    settings = {k: v for k, v in config.items() if k != "model_type"}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(config["model_type"], **settings))
    return sum(p.numel() for p in model.parameters())


def scaffolded(root: Path, repo: str) -> str:
    model_id = "real-" + repo.split("/")[1].lower()  # not the id of a committed recipe
    model_id, document = scaffold_config(REAL[repo], root / f"{repo.replace('/', '--')}.json", model_id=model_id,
                                         hub=repo, revision=SHA, license_id=LICENSES[repo])
    write_recipe(root / "recipes", model_id, document)
    return model_id


@pytest.mark.parametrize("repo", sorted(REAL))
def test_new_plans_to_the_transformers_count(zoo_copy: Path, repo: str):
    model_id = scaffolded(zoo_copy, repo)
    zoo = Zoo(zoo_copy)
    recipe, path = get(zoo, model_id)
    assert recipe.architecture.model_type == REAL[repo]["model_type"] and recipe.model.license == LICENSES[repo]
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path))
    assert plan.estimate.params == transformers_count(REAL[repo])


@pytest.mark.parametrize("repo", sorted(NOT_YET))
def test_architectures_without_a_family_are_refused_with_the_reason(tmp_path: Path, repo: str):
    config = {"model_type": NOT_YET[repo], "hidden_size": 64}
    with pytest.raises(NotImplementedFeatureError, match="not a family this zoo builds yet") as refused:
        scaffold_config(config, tmp_path / "config.json", model_id="x", hub=repo, revision=SHA, license_id="mit")
    assert "src/zootool/arch/families/" in refused.value.hint


def test_legacy_lfm2_configs_read_their_attention_layers_from_full_attn_idxs(tmp_path: Path):
    repo = "LiquidAI/LFM2-350M"
    _, document = scaffold_config(REAL[repo], tmp_path / "config.json", model_id=None, hub=repo, revision=SHA,
                                  license_id=LICENSES[repo])
    layer_types = document["architecture"]["layer-types"]
    assert [i for i, kind in enumerate(layer_types) if kind == "full_attention"] == REAL[repo]["full_attn_idxs"]
    assert document["architecture"]["intermediate-size"] == 4608  # Lfm2MLP's width from block_ff_dim 6656
