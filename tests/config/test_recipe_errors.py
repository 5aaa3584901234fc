"""A table of bad recipes and the exact one-line message each must produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_zoo
from zootool.arch.registry import FAMILIES
from zootool.errors import ConfigError, RecipeError
from zootool.plan.resolve import resolve
from zootool.config.recipe import load_recipe
from zootool.config.zoo_data import Zoo

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
    ("context-length = 128", 'context-length = "two"',
     f"{TINY}: defaults.context-length: Input should be a valid integer", FIX),
    ("context-length = 128", "context-length = 128\nchunks = 2",
     f"{TINY}: defaults: 'chunks' was removed: a bundle is one asset, since no engine can chain layer-range "
     "chunks; delete the key", FIX),
    ('source = { generate = "random", seed = 0, init-std = 0.1 }', 'source = { url = "x" }',
     f"{TINY}: model.source: source needs either 'hub' (with 'revision') or 'generate'", FIX),
    ('source = { generate = "random", seed = 0, init-std = 0.1 }', 'source = { hub = "Org/Model", revision = "main" }',
     f"{TINY}: model.source.revision: 'main' is not a full 40-character commit sha (branches move; "
     "pin a commit)", FIX),
    ("num-experts-per-tok = 2", "num-experts-per-tok = 9",
     f"{TINY}: architecture.num-experts-per-tok: 9 is more than num-experts (8)", FIX),
    ('family = "lfm2_moe"', 'family = "gpt9"',
     f"{TINY}: architecture.family: unknown family 'gpt9'",
     "known: " + ", ".join(repr(family) for family in FAMILIES)),
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
     f"{TINY}: model.license: unknown license 'mitt'", "did you mean 'mit'?; or add zoo/licenses/mitt.toml (keys: "
     "name, hub-license, link, text-file, text-source, optional text-heading; zoo/licenses/apache-2.0.toml is an "
     "example; for a standard license, its text as zoo/licenses/mitt.txt), review the upstream terms, then run the "
     "same command again"),
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


def mutate_recipe(root: Path, name: str, *edits: tuple[str, str]) -> Path:
    path = root / "recipes" / f"{name}.toml"
    text = path.read_text()
    for old, new in edits:
        assert old in text, f"fixture text {old!r} not in {name}"
        text = text.replace(old, new, 1)
    path.write_text(text)
    return path


LLAMA, QWEN = "recipes/tiny-llama.toml", "recipes/qwen3-0.6b.toml"
RANGE_CASES = [
    # (recipe, edits, dotted key, message)
    ("tiny-llama", [("vocab-size = 1024", "vocab-size = -5")],
     "architecture.vocab-size", "Input should be greater than or equal to 1"),
    ("tiny-llama", [("num-hidden-layers = 4", "num-hidden-layers = 100000")],
     "architecture.num-hidden-layers", "Input should be less than or equal to 1024"),
    ("tiny-llama", [("num-key-value-heads = 2", "num-key-value-heads = 3")],
     "architecture.num-key-value-heads", "3 does not divide num-attention-heads (4)"),
    ("tiny-llama", [("rope-theta = 500000.0", "rope-theta = nan")],
     "architecture.rope-theta", "Input should be a finite number"),
    ("tiny-llama", [("rms-norm-eps = 1e-5", "rms-norm-eps = 0.0")],
     "architecture.rms-norm-eps", "Input should be greater than 0"),
    ("tiny-llama", [("tie-embeddings = false", "tie-embeddings = 0")],
     "architecture.tie-embeddings", "Input should be a valid boolean"),
    ("tiny-llama", [("hidden-size = 256", "hidden-size = 258"), ("num-attention-heads = 4", "num-attention-heads = 6"),
                    ("num-key-value-heads = 2", "num-key-value-heads = 3")],
     "architecture.num-attention-heads", "gives an odd head dim (43); RoPE needs an even one"),
    # Llama's config requires hidden = heads x d even with an explicit head-dim (Qwen3's does not).
    ("qwen3-0.6b", [('model-type = "qwen3"', 'model-type = "llama"'), ("hidden-size = 1024", "hidden-size = 1000")],
     "architecture.num-attention-heads", "16 does not divide hidden-size (1000)"),
    ("qwen3-0.6b", [("head-dim = 128", "head-dim = 0")],
     "architecture.head-dim", "Input should be greater than or equal to 1"),
    ("tiny-lfm2-moe", [("hidden-size = 256", "hidden-size = 250")],
     "architecture.num-attention-heads", "4 does not divide hidden-size (250)"),
    ("tiny-lfm2-moe", [("num-dense-layers = 1", "num-dense-layers = 5")],
     "architecture.num-dense-layers", "5 is more than the number of layer-types (4)"),
    ("tiny-lfm2-moe", [('layer-types = ["conv", "full_attention", "conv", "full_attention"]', "layer-types = []")],
     "architecture.layer-types", "needs at least 1 item(s), has 0"),
    ("tiny-lfm2-moe", [('"conv", "full_attention", "conv", "full_attention"]', '"conv", "full_attention", "conv", "mamba"]')],
     "architecture.layer-types[3]", "Input should be 'conv' or 'full_attention'"),
    ("tiny-lfm2-moe", [("conv-kernel = 3", "conv-kernel = 0")],
     "architecture.conv-kernel", "Input should be greater than or equal to 1"),
    ("tiny-lfm2-moe", [("seed = 0", "seed = -1")], "model.source.seed", "Input should be greater than or equal to 0"),
    ("tiny-lfm2-moe", [("init-std = 0.1", "init-std = 5.0")],
     "model.source.init-std", "Input should be less than or equal to 1"),
    ("tiny-lfm2-moe", [("max-introduced-flips = 3", "max-introduced-flips = -1")],
     "defaults.gate.max-introduced-flips", "Input should be greater than or equal to 0"),
    ("tiny-lfm2-moe", [("context-length = 128", "context-length = 8")],
     "defaults.context-length", "Input should be greater than or equal to 16"),
    ("tiny-lfm2-moe", [("[targets.mac]", '[targets."../mac"]')],
     'targets."../mac"', "'../mac' is not a valid target name (lowercase letters, digits, '.', '-', '_'; "
     "no '/', no '..')"),
    ("tiny-lfm2-moe", [('name = "Tiny-LFM2-MoE"', 'name = "../Tiny"')],
     "model.name", "'../Tiny' is not a plain file name (no '/', '\\', control characters, leading '.' or "
     "surrounding spaces)"),
    ("tiny-lfm2-moe", [("schema = 1", "schema = true")], "schema", "Input should be 1"),
]


@pytest.mark.parametrize("name,edits,key,message", RANGE_CASES)
def test_absurd_value_is_a_recipe_error_at_its_key(zoo_root: Path, monkeypatch, name, edits, key, message):
    monkeypatch.chdir(zoo_root)
    mutate_recipe(zoo_root, name, *edits)
    with pytest.raises(RecipeError) as caught:
        load_recipe(Path(f"recipes/{name}.toml"))
    assert caught.value.message == f"recipes/{name}.toml: {key}: {message}"
    assert caught.value.exit_code == 2


def test_qwen3_head_dim_need_not_split_the_hidden_size(zoo_root: Path):
    """Qwen3-0.6B: hidden 1024, 16 heads of 128; Qwen3Config takes any hidden size with head-dim."""
    path = mutate_recipe(zoo_root, "qwen3-0.6b", ("hidden-size = 1024", "hidden-size = 1000"))
    assert load_recipe(path).architecture.resolved_head_dim == 128


PLAN_CASES = [
    # (recipe, edits, target, message, hint)
    ("tiny-lfm2-moe", [("max-position-embeddings = 2048", "max-position-embeddings = 64")], "mac",
     f"{TINY}: defaults.context-length: context length 128 exceeds the model's max-position-embeddings 64",
     "use at most 64 for this target"),
    ("tiny-lfm2-moe", [("max-introduced-flips = 3", "max-introduced-flips = 41")], "mac",
     f"{TINY}: defaults.gate.max-introduced-flips: max-introduced-flips 41 is not below gate positions 41 "
     "(zoo/zoo.toml: defaults.gate.positions): a gate that allows every position to flip cannot fail",
     "use at most 40"),
    ("tiny-lfm2-moe", [("max-introduced-flips = 3 }", "max-introduced-flips = 3, positions = 128 }")], "mac",
     f"{TINY}: defaults.gate.positions: 128 gate positions do not fit after the prompt in context length 128 "
     f"({TINY}: defaults.context-length)", "use fewer than 128 positions, or a longer context-length"),
]


@pytest.mark.parametrize("name,edits,target,message,hint", PLAN_CASES)
def test_plan_refuses_settings_that_disagree(zoo_root: Path, monkeypatch, name, edits, target, message, hint):
    monkeypatch.chdir(zoo_root)
    mutate_recipe(zoo_root, name, *edits)
    recipe = load_recipe(Path(f"recipes/{name}.toml"))
    with pytest.raises(ConfigError) as caught:
        resolve(recipe, target, Zoo(zoo_root), recipe_file=f"recipes/{name}.toml")
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_zoo_default_context_shrinks_to_the_model(zoo_root: Path):
    """The zoo-wide 2048 is a default, not a demand: a model with fewer positions gets its own."""
    path = mutate_recipe(zoo_root, "tiny-lfm2-moe", ("context-length = 128\n", ""),
                         ("max-position-embeddings = 2048", "max-position-embeddings = 512"))
    plan = resolve(load_recipe(path), "mac", Zoo(zoo_root), recipe_file=TINY)
    assert plan.context_length == 512
    assert str(plan.origins["context_length"]) == f"{TINY}: architecture.max-position-embeddings"


UNREADABLE = [
    # (how the file is broken, expected message after the file name)
    (lambda p: p.write_text(p.read_text() + "deep = " + "[" * 5000 + "]" * 5000 + "\n"),
     "values are nested too deeply to read"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"Tiny-LFM2-MoE", b"Tiny-\xe9", 1)),
     "not UTF-8 text (byte "),
    (lambda p: (p.unlink(), p.mkdir()), "is a directory, not a TOML file"),
    (lambda p: p.unlink(), "file not found"),
]


@pytest.mark.parametrize("break_file,message", UNREADABLE)
def test_unreadable_recipe_is_a_recipe_error(zoo_root: Path, monkeypatch, break_file, message):
    monkeypatch.chdir(zoo_root)
    break_file(zoo_root / TINY)
    with pytest.raises(RecipeError) as caught:
        load_recipe(Path(TINY))
    assert caught.value.message.startswith(f"{TINY}: {message}")
    assert "\n" not in caught.value.message and caught.value.hint


ZOO_DATA_CASES = [
    # (file, old, new, table, dotted key and message)
    ("platforms.toml", "budget-bytes = 6_000_000_000", "budget-bytes = 20_000_000_000", "platforms",
     "platforms.iphone.budget-bytes: 20,000,000,000 is more than ram-bytes (12,884,901,888)"),
    ("platforms.toml", "budget-bytes = 6_000_000_000", "budget-bytes = -1", "platforms",
     "platforms.iphone.budget-bytes: Input should be greater than 0"),
    ("platforms.toml", "max-context = 1024", "max-context = 0", "platforms",
     "platforms.iphone.max-context: Input should be greater than or equal to 16"),
    ("schemes.toml", 'experts = { method = "kmeans", bits = 4, scale-bits = 0, lut-bits = 256 }',
     'experts = { method = "kmeans", bits = 4, scale-bits = 0, lut-bits = 0 }', "schemes",
     "schemes.int4km.quantize.experts.lut-bits: k-means weights need a look-up table: set lut-bits above 0"),
    ("kernels.toml", "k-multiple = 256", "k-multiple = 0", "kernels",
     "kernels.gather_qmm.k-multiple: Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize("name,old,new,table,message", ZOO_DATA_CASES)
def test_zoo_data_numbers_are_range_checked(zoo_root: Path, name, old, new, table, message):
    path = zoo_root / "zoo" / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(RecipeError) as caught:
        getattr(Zoo(zoo_root), table)
    assert caught.value.message == f"{path}: {message}"
