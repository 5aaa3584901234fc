"""`zoo index`: build records, the generated catalog (README, index.json, cards) and its check."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from zootool.errors import ConfigError
from zootool.catalog.index import check_index, render_index, write_index
from zootool.cli.index import index_command
from zootool.catalog.markdown import MARKER, MARKER_LINE
from zootool.bundle.manifest import Manifest
from zootool.plan.resolve import resolve
from zootool.units import gb
from zootool.catalog.records import read_record, record_build, record_path, record_publish
from zootool.config.registry import get, load_all
from zootool.config.zoo_data import Zoo

REPO = Path(__file__).resolve().parents[2]
MODEL = "tiny-lfm2-moe"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DAY = dt.date(2026, 3, 14)


def current_plan(zoo: Zoo, target: str = "mac", model: str = MODEL):
    recipe, path = get(zoo, model)
    return resolve(recipe, target, zoo, recipe_file=f"recipes/{path.name}")


def fake_manifest(zoo: Zoo, target: str = "mac", verdict: str = "CLEAN", **extra) -> Manifest:
    """A bundle manifest as the builder writes it, for the current plan of ``target``."""
    plan = current_plan(zoo, target)
    return Manifest.model_validate({
        "manifest_version": 1, "recipe": MODEL, "target": target, "platform": plan.platform_id,
        "plan_hash": plan.plan_hash, "build_key": "cd3659302b182224", "scheme": plan.scheme_id,
        "kernel": plan.kernel_id, "model_dir": f"gpu-pipelined/Tiny-LFM2-MoE-{plan.scheme_id}",
        "source": {"hub": None, "revision": None, "generated_seed": 0},
        "size": {"estimated_bytes": plan.budget.estimated_bytes, "model_bytes": 7_363_854,
                 "budget_bytes": plan.budget.budget_bytes, "bundle_bytes": 7_459_000},
        "gate": {"verdict": verdict, "line": f"{verdict} (+0 flips/41 = fp16 ceiling)", "passed": verdict != "FAIL",
                 "flips": 0, "fp16_flips": 0, "introduced": 0, "positions": 41,
                 "candidate_runtime": "Core AI runtime on Linux x86_64 CPU"},
        "publishable": verdict != "FAIL",
        "tool_versions": {"python": "3.11.7", "zootool": "0.1.0", "coreai-torch": "0.4.3", "torch": "2.13.0"},
        "total_bytes": 7_459_602,
        "files": [{"path": "LICENSE", "size": 1076, "sha256": "d6" * 32}],
        **extra,
    })


def rendered(zoo: Zoo) -> dict[str, str]:
    return {path.relative_to(zoo.root).as_posix(): text for path, text in render_index(zoo).items()}


def row_of(zoo: Zoo, target: str = "mac") -> dict:
    models = json.loads(rendered(zoo)["zoo/index.json"])["models"]
    return next(m for m in models if m["recipe"] == MODEL and m["target"] == target)


def edit_recipe(zoo: Zoo, old: str, new: str) -> None:
    path = zoo.recipes_dir / f"{MODEL}.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# -- the repo itself -------------------------------------------------------------------------------


def test_repo_catalog_is_current():
    """CI guard: a recipe or zoo data change without `zoo index` fails here."""
    assert check_index(Zoo(REPO)) == [], "run `zoo index` and commit the result"


# -- generated content -----------------------------------------------------------------------------


def test_every_generated_file_carries_the_marker(zoo_root: Path):
    zoo = Zoo(zoo_root)
    files = rendered(zoo)
    cards = {f"zoo/{path.stem}.md" for path in zoo.recipes_dir.glob("*.toml")}
    assert set(files) == {"zoo/README.md", "zoo/index.json", *cards} and "zoo/tiny-lfm2-moe.md" in cards
    for name, text in files.items():
        first = text.splitlines()[0]
        assert (MARKER in json.loads(text)["generated_by"]) if name.endswith(".json") else first == MARKER_LINE


def test_unbuilt_targets_are_planned(zoo_root: Path):
    zoo = Zoo(zoo_root)
    files = rendered(zoo)
    readme = files["zoo/README.md"]
    rows = [line for line in readme.splitlines() if line.startswith("| [")]
    targets = sum(len(recipe.targets) for recipe, _ in load_all(zoo))
    assert len(rows) == targets >= 4 and all("not built" in row and "| planned |" in row for row in rows)
    assert gb(current_plan(zoo).budget.estimated_bytes) in readme
    assert json.loads(files["zoo/index.json"])["coreaikit"] == []
    card = files["zoo/lfm2.5-8b-a1b.md"]
    assert "UNPINNED" in card and "LiquidAI/LFM2.5-8B-A1B" in card and "LFM Open License v1.0" in card
    assert "| `hidden-size` | 2,048 |" in card and "24: 18 conv, 6 full_attention" in card
    assert "com.apple.developer.kernel.increased-memory-limit" in card


def test_output_is_deterministic_and_has_no_local_paths(tmp_path: Path, zoo_root: Path):
    from conftest import copy_zoo

    other = copy_zoo(tmp_path / "elsewhere" / "checkout")
    for root in (zoo_root, other):
        record_build(Zoo(root), fake_manifest(Zoo(root)), built=DAY)
    first, second = rendered(Zoo(zoo_root)), rendered(Zoo(other))
    assert first == second == rendered(Zoo(zoo_root))
    record = record_path(Zoo(zoo_root), MODEL, "mac").read_text()
    for text in [*first.values(), record]:
        assert str(tmp_path) not in text and str(Path.home()) not in text and "/home/" not in text


def test_built_record_shows_in_catalog(zoo_root: Path):
    zoo = Zoo(zoo_root)
    record_build(zoo, fake_manifest(zoo), built=DAY)
    files = rendered(zoo)
    row = next(line for line in files["zoo/README.md"].splitlines() if "| mac |" in line and "Tiny" in line)
    assert "| built |" in row and gb(7_459_602) in row and "| CLEAN |" in row
    card = files["zoo/tiny-lfm2-moe.md"]
    assert "built 2026-03-14 with zootool 0.1.0, coreai-torch 0.4.3" in card
    assert "CLEAN (+0 flips/41 = fp16 ceiling)" in card
    assert row_of(zoo)["status"] == "built" and row_of(zoo, "iphone")["status"] == "planned"


def test_record_carries_only_allow_listed_fields(zoo_root: Path):
    zoo = Zoo(zoo_root)
    path = record_build(zoo, fake_manifest(zoo), built=DAY)
    assert path == zoo_root / "zoo" / "records" / MODEL / "mac.json"
    record = read_record(zoo, MODEL, "mac")
    assert record["schema_version"] == 1 and record["built"] == "2026-03-14"
    assert record["size"] == {"estimated_bytes": current_plan(zoo).budget.estimated_bytes, "model_bytes": 7_363_854,
                              "bundle_bytes": 7_459_602, "budget_bytes": 48_000_000_000}
    assert record["gate"]["verdict"] == "CLEAN" and record["tools"] == {"zootool": "0.1.0", "coreai-torch": "0.4.3"}
    assert not {"files", "build_key", "tool_versions", "candidate_runtime"} & set(json.dumps(record).split('"'))
    assert record["publish"] is None


def test_recording_the_same_build_again_keeps_the_file(zoo_root: Path):
    zoo = Zoo(zoo_root)
    path = record_build(zoo, fake_manifest(zoo), built=DAY)
    before = path.read_text()
    record_build(zoo, fake_manifest(zoo), built=DAY + dt.timedelta(days=3))
    assert path.read_text() == before
    record_build(zoo, fake_manifest(zoo, total_bytes=7_500_000), built=DAY + dt.timedelta(days=3))
    assert read_record(zoo, MODEL, "mac")["built"] == "2026-03-17"


def test_record_refuses_local_paths(zoo_root: Path):
    zoo = Zoo(zoo_root)
    with pytest.raises(ConfigError, match="no local paths"):
        record_build(zoo, fake_manifest(zoo, model_dir=str(zoo_root / "build" / MODEL)))
    assert read_record(zoo, MODEL, "mac") is None


def test_record_path_refuses_escapes(zoo_root: Path):
    with pytest.raises(ConfigError):
        record_path(Zoo(zoo_root), "../etc", "mac")
    with pytest.raises(ConfigError):
        record_path(Zoo(zoo_root), MODEL, "../mac")


def test_corrupt_record_is_a_config_error(zoo_root: Path):
    zoo = Zoo(zoo_root)
    path = record_build(zoo, fake_manifest(zoo), built=DAY)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable build record"):
        read_record(zoo, MODEL, "mac")


def test_published_record_feeds_both_json_shapes(zoo_root: Path):
    zoo = Zoo(zoo_root)
    record_build(zoo, fake_manifest(zoo), built=DAY)
    record_publish(zoo, MODEL, "mac", "coreai-zoo/Tiny-LFM2-MoE-CoreAI", COMMIT, "v1", published=DAY)
    index = json.loads(rendered(zoo)["zoo/index.json"])
    assert list(index) == ["generated_by", "schema_version", "models", "coreaikit"]
    assert row_of(zoo) == {
        "name": "Tiny-LFM2-MoE-sym8", "status": "published", "source_model": None,
        "hf_repo": "coreai-zoo/Tiny-LFM2-MoE-CoreAI", "bundle": "gpu-pipelined/Tiny-LFM2-MoE-sym8",
        "gate_transcript": f"https://huggingface.co/coreai-zoo/Tiny-LFM2-MoE-CoreAI/blob/{COMMIT}/gate.json",
        "recipe": MODEL, "target": "mac",
    }
    assert index["coreaikit"] == [{
        "id": MODEL, "name": "Tiny-LFM2-MoE", "repo": "coreai-zoo/Tiny-LFM2-MoE-CoreAI", "revision": COMMIT,
        "kind": "llm", "variants": {"macos": {"path": "gpu-pipelined/Tiny-LFM2-MoE-sym8", "sizeMB": 7}},
    }]
    readme = rendered(zoo)["zoo/README.md"]
    assert "[coreai-zoo/Tiny-LFM2-MoE-CoreAI](https://huggingface.co/coreai-zoo/Tiny-LFM2-MoE-CoreAI)" in readme


def test_two_targets_in_separate_repos_are_separate_coreaikit_entries(zoo_root: Path):
    zoo = Zoo(zoo_root)
    for target, repo in (("mac", "coreai-zoo/Tiny-LFM2-MoE-CoreAI"), ("iphone", "coreai-zoo/Tiny-LFM2-MoE-CoreAI-iPhone")):
        record_build(zoo, fake_manifest(zoo, target), built=DAY)
        record_publish(zoo, MODEL, target, repo, COMMIT, None, published=DAY)
    entries = json.loads(rendered(zoo)["zoo/index.json"])["coreaikit"]
    assert [(e["id"], list(e["variants"])) for e in entries] == [(f"{MODEL}-iphone", ["ios"]), (f"{MODEL}-mac", ["macos"])]


def test_unchanged_republish_keeps_the_earlier_commit(zoo_root: Path):
    zoo = Zoo(zoo_root)
    record_build(zoo, fake_manifest(zoo), built=DAY)
    record_publish(zoo, MODEL, "mac", "coreai-zoo/Tiny-LFM2-MoE-CoreAI", COMMIT, None, published=DAY)
    record_publish(zoo, MODEL, "mac", "coreai-zoo/Tiny-LFM2-MoE-CoreAI", None, "v2", published=DAY)
    assert read_record(zoo, MODEL, "mac")["publish"]["commit"] == COMMIT


def test_publish_needs_a_build_record_or_its_manifest(zoo_root: Path):
    zoo = Zoo(zoo_root)
    with pytest.raises(ConfigError, match="no build record"):
        record_publish(zoo, MODEL, "mac", "coreai-zoo/X", COMMIT, None)
    with pytest.raises(ConfigError, match="commit sha"):
        record_publish(zoo, MODEL, "mac", "coreai-zoo/X", "main", None, manifest=fake_manifest(zoo))
    record_publish(zoo, MODEL, "mac", "coreai-zoo/X", COMMIT, None, manifest=fake_manifest(zoo))
    assert read_record(zoo, MODEL, "mac")["publish"]["repo"] == "coreai-zoo/X"


def test_status_follows_gate_plan_and_budget(zoo_root: Path):
    zoo = Zoo(zoo_root)
    record_build(zoo, fake_manifest(zoo, "iphone", verdict="FAIL"), built=DAY)
    assert row_of(zoo, "iphone")["status"] == "gate-failed"
    record_build(zoo, fake_manifest(zoo, "mac"), built=DAY)
    edit_recipe(zoo, 'kernel = "gather_qmm"', 'kernel = "gather_mm"')
    assert row_of(Zoo(zoo_root), "mac")["status"] == "outdated"
    edit_recipe(zoo, 'quant = "int4km"', 'quant = "fp16"')
    edit_recipe(zoo, "hidden-size = 256", "hidden-size = 16384")
    assert row_of(Zoo(zoo_root), "iphone")["status"] == "over-budget"


# -- write and check -------------------------------------------------------------------------------


def test_check_fails_after_a_recipe_change_and_passes_after_regenerating(zoo_root: Path):
    zoo = Zoo(zoo_root)
    for name in ("README.md", "index.json", "tiny-lfm2-moe.md"):
        (zoo.data_dir / name).unlink(missing_ok=True)
    assert {"zoo/README.md", "zoo/index.json", "zoo/tiny-lfm2-moe.md"} <= set(check_index(zoo))
    assert {"zoo/README.md", "zoo/index.json", "zoo/tiny-lfm2-moe.md"} <= set(index_command(zoo, check=False)["changed"])
    assert index_command(zoo, check=True)["up_to_date"] and write_index(zoo) == []
    edit_recipe(zoo, 'kernel = "gather_qmm"', 'kernel = "gather_mm"')
    zoo = Zoo(zoo_root)
    with pytest.raises(ConfigError) as failure:
        index_command(zoo, check=True)
    assert failure.value.exit_code == 2 and failure.value.hint == "run `zoo index` and commit"
    assert "zoo/README.md" in failure.value.message and "zoo/tiny-lfm2-moe.md" in failure.value.message
    assert "zoo/lfm2.5-8b-a1b.md" not in failure.value.message
    index_command(zoo, check=False)
    assert check_index(zoo) == []


def test_a_new_record_makes_the_catalog_stale(zoo_root: Path):
    zoo = Zoo(zoo_root)
    write_index(zoo)
    record_build(zoo, fake_manifest(zoo), built=DAY)
    assert "zoo/tiny-lfm2-moe.md" in check_index(zoo)


def test_cards_of_removed_recipes_go_and_hand_written_markdown_stays(zoo_root: Path):
    zoo = Zoo(zoo_root)
    write_index(zoo)
    notes = zoo.data_dir / "notes.md"
    notes.write_text("# hand-written\n")
    (zoo.recipes_dir / "lfm2.5-8b-a1b.toml").unlink()
    zoo = Zoo(zoo_root)
    assert "zoo/lfm2.5-8b-a1b.md (no recipe any more)" in check_index(zoo)
    assert zoo.data_dir / "lfm2.5-8b-a1b.md" in write_index(zoo)
    assert not (zoo.data_dir / "lfm2.5-8b-a1b.md").exists() and notes.exists() and check_index(zoo) == []
