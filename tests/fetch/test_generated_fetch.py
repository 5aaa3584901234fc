"""A recipe's `generate = "random"` source: a bf16 fixture that builds, with a LICENSE even without local text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_zoo
from zootool.fetch.hub import fetch_checkpoint
from zootool.plan.resolve import resolve
from zootool.config.registry import get
from zootool.config.zoo_data import Zoo

MODEL = "tiny-llama"


def _fetch(root: Path) -> Path:
    zoo = Zoo(root)
    recipe, path = get(zoo, MODEL)
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path))
    return fetch_checkpoint(plan, root / ".zoo-cache", zoo.data_dir / "licenses")


def _relicense(root: Path, license_id: str) -> None:
    recipe = root / "recipes" / f"{MODEL}.toml"
    recipe.write_text(recipe.read_text().replace('license = "mit"', f'license = "{license_id}"'))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_zoo(tmp_path / "zoo")


def test_license_without_local_text_gets_a_fixture_note(root):
    assert not (root / "zoo" / "licenses" / "lfm1.0.txt").exists()
    _relicense(root, "lfm1.0")
    text = (_fetch(root) / "LICENSE").read_text()
    assert "LFM Open License v1.0" in text and "lfm1.0" in text
    assert "generated test fixture" in text and "random weights" in text


def test_license_with_local_text_is_copied_and_weights_are_bf16(root):
    folder = _fetch(root)
    text = (folder / "LICENSE").read_text()
    assert "generated test fixture" in text and "its copyright holders are the zootool authors" in text
    assert text.endswith((root / "zoo" / "licenses" / "mit.txt").read_text())
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    assert (folder / "chat_template.jinja").is_file()


def test_a_new_generator_version_is_not_served_from_an_old_cache(root, monkeypatch):
    first = _fetch(root)
    assert _fetch(root) == first
    monkeypatch.setattr("zootool.fetch.synthetic.GENERATOR_VERSION", 10**6)
    assert _fetch(root) != first
