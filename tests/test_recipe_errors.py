"""A table of bad recipes and the exact one-line message each must produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_zoo
from zootool.errors import ConfigError, RecipeError
from zootool.plan import resolve
from zootool.recipe import load_recipe
from zootool.zoo_data import Zoo

TINY = "recipes/tiny-lfm2-moe.toml"
FIX = "fix this value (`zoo schema` prints every recipe key and its type)"


def mutate(root: Path, old: str, new: str) -> Path:
    path = root / TINY
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in the tiny recipe"
    path.write_text(text.replace(old, new, 1))
    return path


LOAD_CASES = [
    # (old text, new text, expected message, expected hint or None)
    ('quant = "sym8"', 'quantt = "sym8"',
     f"{TINY}: targets.mac.quantt: unknown key 'quantt'", "did you mean 'quant'?"),
    ("hidden-size = 256", "hidden-sise = 256",
     f"{TINY}: architecture.hidden-sise: unknown key 'hidden-sise'", "did you mean 'hidden-size'?"),
    ('license = "mit"\n', "",
     f"{TINY}: model.license: required key is missing", "add 'license' there"),
    ('id = "tiny-lfm2-moe"', 'id = "../evil"',
     f"{TINY}: model.id: '../evil' is not a valid model id (lowercase letters, digits, '.', '-', '_'; "
     "no '/', no '..')", FIX),
    ("hidden-size = 256", 'hidden-size = "256"',
     f"{TINY}: architecture.hidden-size: Input should be a valid integer", FIX),
    ("hidden-size = 256", "hidden-size = 0",
     f"{TINY}: architecture.hidden-size: Input should be greater than or equal to 1", FIX),
    ('source = { generate = "random", seed = 0, init-std = 0.1 }', 'source = { url = "x" }',
     f"{TINY}: model.source: source needs either 'hub' (with 'revision') or 'generate'", FIX),
    ('source = { generate = "random", seed = 0, init-std = 0.1 }', 'source = { hub = "Org/Model", revision = "main" }',
     f"{TINY}: model.source.revision: 'main' is not a full 40-character commit sha (branches move; "
     "pin a commit)", FIX),
    ("num-experts-per-tok = 2", "num-experts-per-tok = 9",
     f"{TINY}: architecture.num-experts-per-tok: 9 is more than num-experts (8)", FIX),
    ('family = "lfm2_moe"', 'family = "gpt9"',
     f"{TINY}: architecture.family: unknown family 'gpt9'", "known: 'lfm2_moe', 'llama'"),
    ("schema = 1", "schema = 2", f"{TINY}: schema: Input should be 1", FIX),
    ('id = "tiny-lfm2-moe"', 'id = "tiny-other"',
     f"{TINY}: model.id: 'tiny-other' does not match the file name 'tiny-lfm2-moe.toml'",
     "rename the file to 'tiny-other.toml' or change model.id to 'tiny-lfm2-moe'"),
]


@pytest.mark.parametrize("old,new,message,hint", LOAD_CASES)
def test_bad_recipe_message(zoo_root: Path, monkeypatch, old, new, message, hint):
    monkeypatch.chdir(zoo_root)
    mutate(zoo_root, old, new)
    with pytest.raises(RecipeError) as caught:
        load_recipe(Path(TINY))
    assert caught.value.message == message
    assert caught.value.hint == hint
    assert caught.value.exit_code == 2


def test_toml_syntax_error_keeps_line_and_column(zoo_root: Path, monkeypatch):
    monkeypatch.chdir(zoo_root)
    mutate(zoo_root, "hidden-size = 256", "hidden-size = = 256")
    with pytest.raises(RecipeError) as caught:
        load_recipe(Path(TINY))
    assert caught.value.message.startswith(f"{TINY}: invalid TOML: ")
    line = (zoo_root / TINY).read_text().splitlines().index("hidden-size = = 256") + 1
    assert f"line {line}, column 15" in caught.value.message


RESOLVE_CASES = [
    ('quant = "sym8"', 'quant = "sym9"',
     f"{TINY}: targets.mac.quant: unknown quant scheme 'sym9'", "did you mean 'sym8'?"),
    ('platform = "mac"', 'platform = "macc"',
     f"{TINY}: targets.mac.platform: unknown platform 'macc'", "did you mean 'mac'?"),
    ('license = "mit"', 'license = "mitt"',
     f"{TINY}: model.license: unknown license 'mitt'", "did you mean 'mit'?"),
    ('kernel = "gather_qmm"', 'kernel = "gather_qmmm"',
     f"{TINY}: targets.mac.kernel: unknown kernel 'gather_qmmm'", "did you mean 'gather_qmm'?"),
    ('quant = "sym8"', 'quant = "fp16"',
     f"{TINY}: targets.mac.kernel: kernel 'gather_qmm' does not support quant scheme 'fp16'",
     "it supports quant schemes: sym8"),
    ("context-length = 128", "context-length = 4096",
     f"{TINY}: defaults.context-length: context length 4096 exceeds platform 'iphone' max-context 1024",
     "use at most 1024 for this target"),
]


@pytest.mark.parametrize("old,new,message,hint", RESOLVE_CASES)
def test_bad_reference_message(zoo_root: Path, monkeypatch, old, new, message, hint):
    monkeypatch.chdir(zoo_root)
    mutate(zoo_root, old, new)
    recipe = load_recipe(Path(TINY))
    target = "iphone" if "context-length" in old else "mac"
    with pytest.raises(ConfigError) as caught:
        resolve(recipe, target, Zoo(zoo_root), recipe_file=TINY)
    assert caught.value.message == message
    assert caught.value.hint == hint


def test_zoo_data_error_names_file_and_key(zoo_root: Path):
    path = zoo_root / "zoo" / "platforms.toml"
    path.write_text(path.read_text().replace("budget-bytes = 6_000_000_000", "budget-byts = 6_000_000_000"))
    with pytest.raises(RecipeError) as caught:
        Zoo(zoo_root).platforms
    assert caught.value.message == f"{path}: platforms.iphone.budget-byts: unknown key 'budget-byts'"
    assert caught.value.hint == "did you mean 'budget-bytes'?"


def test_scheme_must_cover_every_group(zoo_root: Path):
    path = zoo_root / "zoo" / "schemes.toml"
    path.write_text(path.read_text().replace('"conv", "linear", "experts", "buffer"]', '"conv", "linear", "experts"]'))
    with pytest.raises(RecipeError) as caught:
        Zoo(zoo_root).schemes
    assert caught.value.message.endswith("schemes.fp16: tensor group(s) ['buffer'] are neither quantized nor kept fp16")


def test_cli_bad_recipe_is_one_line_exit_2_no_traceback(zoo_root: Path):
    mutate(zoo_root, 'quant = "sym8"', 'quantt = "sym8"')
    result = run_zoo("plan", "tiny-lfm2-moe", "--target", "mac", cwd=zoo_root)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: {TINY}: targets.mac.quantt: unknown key 'quantt'"
    assert lines[1] == "  hint: did you mean 'quant'?"


def test_cli_debug_env_shows_traceback(zoo_root: Path):
    mutate(zoo_root, 'quant = "sym8"', 'quantt = "sym8"')
    result = run_zoo("plan", "tiny-lfm2-moe", "--target", "mac", root=zoo_root, env={"ZOO_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_list_shows_good_recipes_and_reports_each_bad_one(zoo_root: Path):
    mutate(zoo_root, 'quant = "sym8"', 'quantt = "sym8"')
    result = run_zoo("list", "--json", root=zoo_root)
    assert result.returncode == 2
    assert {row["model"] for row in json.loads(result.stdout)} == {"lfm2.5-8b-a1b"} | {
        p.stem for p in (zoo_root / "recipes").glob("*.toml") if p.stem != "tiny-lfm2-moe"}
    assert "targets.mac.quantt: unknown key 'quantt'" in result.stderr
