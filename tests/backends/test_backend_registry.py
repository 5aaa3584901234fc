"""The backend registry: one entry per backend id zoo data may name, and plan-time storage checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from zootool.backends.registry import REGISTRY, backend, scheme_refusal
from zootool.errors import ConfigError
from zootool.plan.resolve import resolve
from zootool.config.recipe import Settings
from zootool.config.registry import get
from zootool.config.zoo_data import BACKENDS, QuantSpec, Zoo

REPO = Path(__file__).resolve().parents[2]


def test_every_backend_id_has_one_registered_backend():
    assert tuple(REGISTRY) == BACKENDS
    assert {backend(i).suffix for i in BACKENDS} == {".aimodel", ".mlpackage"}


def test_every_scheme_a_backend_claims_is_one_it_can_store():
    for scheme_id, scheme in Zoo(REPO).schemes.items():
        for backend_id in scheme.backends:
            assert scheme_refusal(backend_id, scheme) is None, (scheme_id, backend_id)


def test_storage_rules_refuse_what_the_exporters_cannot_write():
    kmeans4 = QuantSpec(method="kmeans", bits=4, scale_bits=0, lut_bits=256)
    affine4 = QuantSpec(method="affine", bits=4, block_size=32)
    assert backend("coreai").storage_refusal("experts", kmeans4) is None
    assert "Core AI cannot store linear" in backend("coreai").storage_refusal("linear", kmeans4)
    assert "Core AI cannot store" in backend("coreai").storage_refusal("linear", affine4)
    assert backend("coremltools").storage_refusal("linear", affine4) is None
    sym3 = QuantSpec(method="symmetric", bits=3, block_size=32)
    assert "Core ML cannot store symmetric 3-bit" in backend("coremltools").storage_refusal("linear", sym3)


def test_a_scheme_the_backend_cannot_store_is_refused_when_planning(zoo_root: Path):
    schemes = zoo_root / "zoo" / "schemes.toml"
    text = schemes.read_text().replace('[schemes.mix48]\n', '[schemes.mix48]\nbackends = ["coreai"]\n', 1)
    text = text.replace('linear = { method = "symmetric", bits = 4, block-size = 32, scale-bits = 16 }',
                        'linear = { method = "affine", bits = 4, block-size = 32, scale-bits = 16 }', 1)
    schemes.write_text(text)
    zoo = Zoo(zoo_root)
    recipe, path = get(zoo, "tiny-llama")
    with pytest.raises(ConfigError, match="Core AI cannot store linear weights as affine 4-bit"):
        resolve(recipe, "mac", zoo, recipe_file=str(path), overrides=Settings(quant="mix48"))
