"""`zoo list` answers from .zoo-cache/list.json only while its inputs are the ones it was made from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, invoke_zoo

from zootool.cli import list_cache
from zootool.cli.list_cache import CACHE_FILE, cached_rows, inputs_key


def listed(root) -> list[dict]:
    result = invoke_zoo("list", "--json", root=root)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def row(rows: list[dict], model: str, target: str) -> dict:
    return next(r for r in rows if r["model"] == model and r["target"] == target)


def test_a_second_run_answers_from_the_cache_with_the_same_rows(zoo_root):
    first = listed(zoo_root)
    assert (zoo_root / CACHE_FILE).is_file()
    assert [r.to_json() for r in cached_rows(zoo_root)] == first
    assert listed(zoo_root) == first


def test_a_cached_row_is_what_the_cache_holds(zoo_root):
    """The second run really reads the file: a row edited in it (key kept) is what is shown."""
    listed(zoo_root)
    stored = json.loads((zoo_root / CACHE_FILE).read_text())
    stored["rows"][0]["scheme"] = "from-the-cache"
    (zoo_root / CACHE_FILE).write_text(json.dumps(stored))
    assert listed(zoo_root)[0]["scheme"] == "from-the-cache"


def test_an_edited_recipe_is_resolved_again(zoo_root):
    listed(zoo_root)
    recipe = zoo_root / "recipes" / "tiny-llama.toml"
    text = recipe.read_text()
    recipe.write_text(text.replace('platform = "iphone"\nquant = "int8-all"', 'platform = "iphone"\nquant = "sym8"'))
    assert recipe.read_text() != text
    assert row(listed(zoo_root), "tiny-llama", "iphone")["scheme"] == "sym8"


def test_edited_zoo_data_is_resolved_again(zoo_root):
    assert row(listed(zoo_root), "tiny-llama", "mac")["budget_bytes"] == 48_000_000_000
    platforms = zoo_root / "zoo" / "platforms.toml"
    text = platforms.read_text()
    platforms.write_text(text.replace("budget-bytes = 48_000_000_000", "budget-bytes = 47_000_000_000", 1))
    assert platforms.read_text() != text
    assert row(listed(zoo_root), "tiny-llama", "mac")["budget_bytes"] == 47_000_000_000


def test_a_new_recipe_file_changes_the_key(zoo_root):
    key = inputs_key(zoo_root)
    (zoo_root / "recipes" / "tiny-llama-copy.toml").write_text((zoo_root / "recipes" / "tiny-llama.toml").read_text())
    assert inputs_key(zoo_root) != key


def test_a_code_change_changes_the_key(zoo_root, tmp_path, monkeypatch):
    module = tmp_path / "estimate.py"
    module.write_text("A = 1\n")
    monkeypatch.setattr(list_cache, "_code_files", lambda: iter([module]))
    key = inputs_key(zoo_root)
    module.write_text("A = 22\n")
    assert inputs_key(zoo_root) != key


def test_a_broken_recipe_is_never_cached_and_errs_every_time(zoo_root):
    listed(zoo_root)
    recipe = zoo_root / "recipes" / "tiny-llama.toml"
    recipe.write_text(recipe.read_text().replace("hidden-size = 256", "hidden-size = 0"))
    for _ in range(2):
        result = invoke_zoo("list", "--json", root=zoo_root)
        assert result.exit_code == 2 and "recipes/tiny-llama.toml" in result.stderr
    assert cached_rows(zoo_root) is None


def test_an_unreadable_cache_is_resolved_again_and_replaced(zoo_root):
    first = listed(zoo_root)
    for junk in ("not json", "[]", json.dumps({"key": inputs_key(zoo_root), "rows": [{"model": 1}]})):
        (zoo_root / CACHE_FILE).write_text(junk)
        assert cached_rows(zoo_root) is None
        assert listed(zoo_root) == first
        assert cached_rows(zoo_root) is not None


def test_a_cached_list_imports_no_pydantic_schema_machinery(zoo_root):
    """Typer's coercion adapters and zootool's models stay unimported when the cache answers."""
    listed(zoo_root)
    code = (
        "import sys; from zootool.cli.app import main; sys.argv=['zoo','list'];\n"
        "try: main()\nexcept SystemExit: pass\n"
        "sys.stderr.write('LOADED=' + ','.join(m for m in ('pydantic.main', 'typer._adapters', 'zootool.config.recipe')"
        " if m in sys.modules))"
    )
    env = {**os.environ, "ZOO_ROOT": str(zoo_root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert "zoo models x targets" in result.stdout, result.stderr
    assert result.stderr.strip().endswith("LOADED="), result.stderr
