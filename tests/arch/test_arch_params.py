"""Parameter counts and tensor layouts from recipe numbers agree exactly with transformers (meta device)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from arch_fixtures import check_against_transformers  # noqa: E402

from zootool.arch.families.lfm2_moe import Lfm2MoeArch  # noqa: E402
from zootool.arch.registry import architecture_of  # noqa: E402
from zootool.config.registry import get  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(path.stem for path in (REPO / "recipes").glob("*.toml"))


def recipe_arch(model_id: str):
    return get(Zoo(REPO), model_id)[0].architecture


def variant(**changes) -> Lfm2MoeArch:
    data = recipe_arch("tiny-lfm2-moe").model_dump()
    return Lfm2MoeArch(**(data | changes))


CASES = {
    "untied head, conv bias": lambda: variant(tie_embeddings=False, conv_bias=True),
    "all dense": lambda: variant(num_dense_layers=4),
    "no dense, no expert bias": lambda: variant(num_dense_layers=0, use_expert_bias=False),
    "attention only": lambda: variant(layer_types=("full_attention",) * 3, num_key_value_heads=4),
}


@pytest.mark.parametrize("model_id", RECIPES)
def test_every_recipe_counts_like_transformers(model_id):
    check_against_transformers(recipe_arch(model_id))


@pytest.mark.parametrize("name", CASES)
def test_lfm2_moe_variants_count_like_transformers(name):
    check_against_transformers(CASES[name]())


def test_transformers_default_lfm2_8b_config_round_trips():
    config = transformers.Lfm2MoeConfig(
        layer_types=["full_attention" if i in (2, 6, 10, 14, 18, 21) else "conv" for i in range(24)],
        num_hidden_layers=24,
    ).to_dict()
    arch = architecture_of(config, "Lfm2MoeConfig()")
    assert check_against_transformers(arch) == sum(s.numel for s in arch.tensors() if s.parameter)
    assert arch.vocab_size == 65536
