"""Parameter counts from recipe numbers agree exactly with transformers on the meta device."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from zootool.arch.lfm2_moe.schema import Lfm2MoeArch  # noqa: E402
from zootool.config.registry import get  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def transformers_count(config: dict) -> tuple[int, dict[str, tuple]]:
    hf_config = transformers.Lfm2MoeConfig(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = transformers.Lfm2MoeForCausalLM(hf_config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    return sum(p.numel() for p in model.parameters()), shapes


def recipe_arch(model_id: str) -> Lfm2MoeArch:
    return get(Zoo(REPO), model_id)[0].architecture


def variant(**changes) -> Lfm2MoeArch:
    data = recipe_arch("tiny-lfm2-moe").model_dump()
    return Lfm2MoeArch(**(data | changes))


CASES = {
    "flagship recipe": lambda: recipe_arch("lfm2.5-8b-a1b"),
    "tiny recipe": lambda: recipe_arch("tiny-lfm2-moe"),
    "untied head, conv bias": lambda: variant(tie_embeddings=False, conv_bias=True),
    "all dense": lambda: variant(num_dense_layers=4),
    "no dense, no expert bias": lambda: variant(num_dense_layers=0, use_expert_bias=False),
    "attention only": lambda: variant(layer_types=("full_attention",) * 3, num_key_value_heads=4),
}


@pytest.mark.parametrize("name", CASES)
def test_param_count_matches_transformers(name):
    arch = CASES[name]()
    expected, shapes = transformers_count(arch.to_hf_config())
    specs = arch.tensors()
    assert sum(s.numel for s in specs if s.parameter) == expected
    # Every stored tensor is named and shaped as in the transformers checkpoint.
    stored = {s.name: s.shape for s in specs}
    tied = {"lm_head.weight"} if arch.tie_embeddings else set()
    assert stored == {k: v for k, v in shapes.items() if k not in tied and "pos_emb" not in k}


def test_transformers_default_lfm2_8b_config_round_trips():
    config = transformers.Lfm2MoeConfig(
        layer_types=["full_attention" if i in (2, 6, 10, 14, 18, 21) else "conv" for i in range(24)],
        num_hidden_layers=24,
    ).to_dict()
    arch = Lfm2MoeArch(**Lfm2MoeArch.hf_config_to_fields(config))
    assert sum(s.numel for s in arch.tensors() if s.parameter) == transformers_count(arch.to_hf_config())[0]
    assert arch.vocab_size == 65536
