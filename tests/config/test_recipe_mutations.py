"""Mutation test: malformed variants of every committed recipe are refused by the real CLI.

Each variant must give exit 2, an error naming the recipe file, no traceback, and at
most two lines (the error and its hint). Variants run in-process through Typer's
CliRunner; a few go through a fresh interpreter to prove the console-script exit path.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import REPO, invoke_zoo, run_zoo
from recipe_mutations import GENERATORS

RECIPES = sorted((REPO / "recipes").glob("*.toml"))


def refusal_problems(result, recipe: str) -> list[str]:
    """What is wrong with how the CLI refused (empty when it refused properly)."""
    output = result.stdout + result.stderr
    problems = []
    if result.exit_code != 2:
        problems.append(f"exit {result.exit_code}")
    if f"recipes/{recipe}" not in result.stderr:
        problems.append("file not named")
    if "Traceback" in output:
        problems.append("traceback")
    if len(result.stderr.strip().splitlines()) > 2:
        problems.append(f"{len(result.stderr.strip().splitlines())} lines")
    return problems + ([f"said: {result.stderr.strip()[:300]!r}"] if problems else [])


def first_target(path: Path) -> str:
    return next(iter(tomllib.loads(path.read_text())["targets"]))


@pytest.mark.parametrize("kind", list(GENERATORS))
@pytest.mark.parametrize("recipe", [p.name for p in RECIPES])
def test_malformed_recipe_is_refused_by_zoo_plan(zoo_root: Path, recipe: str, kind: str):
    path = zoo_root / "recipes" / recipe
    text = path.read_text()
    target = first_target(path)
    failures, count = [], 0
    for description, content in GENERATORS[kind](text, tomllib.loads(text)):
        path.write_bytes(content)
        result = invoke_zoo("plan", path.stem, "--target", target, root=zoo_root)
        problems = refusal_problems(result, recipe)
        failures += [f"{description}: {'; '.join(problems)}"] if problems else []
        count += 1
    assert count, f"no {kind} variants of {recipe}: the generator found nothing to mutate"
    assert not failures, f"{len(failures)} of {count} {kind} variants of {recipe} not refused properly:\n" + \
        "\n".join(failures)


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_zoo_list_reports_the_malformed_recipe_and_lists_the_others(zoo_root: Path, kind: str):
    """`zoo list` keeps going: the good recipes are listed, the bad one named, exit 2."""
    path = zoo_root / "recipes" / "tiny-llama.toml"
    text = path.read_text()
    variants = list(GENERATORS[kind](text, tomllib.loads(text)))
    failures = []
    for description, content in variants[:: max(1, len(variants) // 8)]:
        path.write_bytes(content)
        result = invoke_zoo("list", "--json", root=zoo_root)
        listed = {row["model"] for row in __import__("json").loads(result.stdout)} if result.stdout else set()
        problems = refusal_problems(result, path.name)
        if listed != {p.stem for p in RECIPES} - {"tiny-llama"}:
            problems.append(f"listed {sorted(listed)}")
        failures += [f"{description}: {'; '.join(problems)}"] if problems else []
    assert not failures, "\n".join(failures)


def test_a_directory_named_like_a_recipe_is_refused(zoo_root: Path):
    (zoo_root / "recipes" / "folder.toml").mkdir()
    result = invoke_zoo("list", root=zoo_root)
    assert refusal_problems(result, "folder.toml") == []
    assert "is a directory" in result.stderr


def test_a_dangling_recipe_link_is_refused(zoo_root: Path):
    (zoo_root / "recipes" / "gone.toml").symlink_to(zoo_root / "nowhere.toml")
    result = invoke_zoo("plan", "gone", "--target", "mac", root=zoo_root)
    assert refusal_problems(result, "gone.toml") == []


SUBPROCESS_CASES = {
    "nested too deeply": lambda text: text + "\ndeep = " + "[" * 5000 + "]" * 5000 + "\n",
    "latin-1": lambda text: text.replace('name = "', 'name = "Caf\u00e9 ', 1),
    "zero hidden size": lambda text: text.replace("hidden-size = 256", "hidden-size = 0", 1),
    "negative vocab": lambda text: text.replace("vocab-size = 1024", "vocab-size = -5", 1),
}


@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_refusal_through_a_fresh_interpreter(zoo_root: Path, case: str):
    path = zoo_root / "recipes" / "tiny-llama.toml"
    mutated = SUBPROCESS_CASES[case](path.read_text())
    path.write_bytes(mutated.encode("latin-1" if case == "latin-1" else "utf-8"))
    result = run_zoo("plan", "tiny-llama", "--target", "mac", root=zoo_root)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "tiny-llama.toml" in result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
