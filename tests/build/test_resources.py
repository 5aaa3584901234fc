"""Pre-flight: per-stage memory and disk predicted in the plan, checked against the machine (exit 12).

Fast: nothing here converts a model; the refusals happen before any download or export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_zoo
from zootool.plan import footprint
from zootool.errors import ConfigError, ResourceError
from zootool.plan.footprint import ResourceEstimate, StageResources
from zootool.plan.resolve import resolve
from zootool.units import gb
from zootool.config.recipe import Settings
from zootool.config.registry import get
from zootool.build.resources import DISK_ENV, MEMORY_ENV, Folder, Machine, machine, require, shortfalls
from zootool.config.zoo_data import Zoo

MODEL = "tiny-lfm2-moe"


def plan_for(root: Path, model: str, target: str, **cli):
    zoo = Zoo(root)
    recipe, path = get(zoo, model)
    return resolve(recipe, target, zoo, recipe_file=str(path), overrides=Settings(**cli) if cli else None)


def edit_recipe(root: Path, old: str, new: str, model: str = MODEL) -> None:
    recipe = root / "recipes" / f"{model}.toml"
    text = recipe.read_text()
    assert old in text
    recipe.write_text(text.replace(old, new))


def test_plan_json_has_each_stage_with_its_peak_phase():
    result = run_zoo("plan", "lfm2.5-8b-a1b", "--target", "mac", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    stages = plan["resources"]["stages"]
    assert list(stages) == ["fetch", "export", "gate"]
    for stage in stages.values():
        assert stage["memory_bytes"] == max(stage["phases"].values())
    params = plan["estimate"]["params"]
    # The export quantizes each layer as it loads: the stored weights plus about one layer at
    # fp16, never the whole model at fp16; the bundle is written once.
    export = stages["export"]["phases"]
    assert plan["estimate"]["weight_bytes"] < export["load_and_quantize"] < params * 2
    assert plan["estimate"]["weight_bytes"] < export["convert_and_save"] < params * 2
    assert plan["estimate"]["weight_bytes"] < stages["export"]["disk_bytes"] < 2 * plan["estimate"]["weight_bytes"]
    # The full-size gate streams both sides in torch (plan.gate_runtime): one layer in memory, no
    # export on disk; a Hub fetch writes a bf16 copy.
    assert plan["gate_runtime"] == "streamed"
    assert list(stages["gate"]["phases"]) == ["oracle", "fp16_streamed", "candidate_streamed"]
    assert stages["gate"]["disk_bytes"] == 0 and stages["gate"]["memory_bytes"] < 8 * 10**9
    assert stages["fetch"]["disk_location"] == "cache" and stages["fetch"]["disk_bytes"] >= params * 2


def test_an_engine_gate_writes_the_fp16_export_to_the_temporary_directory():
    plan = plan_for(REPO, "tiny-lfm2-moe", "mac")
    gate = plan.resources.stages["gate"]
    assert plan.gate_runtime == "engine" and gate.disk_location == "temp"
    assert gate.disk_bytes > plan.estimate.params * 2 and "fp16_load_and_quantize" in gate.phases


def test_kmeans_scheme_adds_its_temporaries_and_shrinks_the_converter_share():
    sym8 = plan_for(REPO, "lfm2.5-8b-a1b", "mac").resources.stages["export"].phases
    int4km = plan_for(REPO, "lfm2.5-8b-a1b", "iphone").resources.stages["export"].phases
    assert int4km["convert_and_save"] < sym8["convert_and_save"]  # 4-bit experts: fewer stored bytes
    fp16 = plan_for(REPO, "lfm2.5-8b-a1b", "mac", quant="fp16", kernel="gather_mm").resources.stages["export"]
    fp16_stored = plan_for(REPO, "lfm2.5-8b-a1b", "mac", quant="fp16", kernel="gather_mm").estimate.weight_bytes
    int4km_stored = plan_for(REPO, "lfm2.5-8b-a1b", "iphone").estimate.weight_bytes
    # Beyond what each stores, fp16 quantizes nothing, while k-means holds its chunk temporaries.
    assert fp16.phases["load_and_quantize"] - fp16_stored < int4km["load_and_quantize"] - int4km_stored
    assert fp16.phases["load_and_quantize"] > sym8["load_and_quantize"]  # it stores every weight at fp16


def test_oracle_phase_follows_the_largest_layer_not_the_layer_count(zoo_root: Path):
    base = plan_for(zoo_root, MODEL, "mac").resources.stages["gate"].phases
    edit_recipe(zoo_root, 'layer-types = ["conv", "full_attention", "conv", "full_attention"]',
                'layer-types = ["conv", "full_attention", "conv", "full_attention", "conv", "full_attention"]')
    deeper = plan_for(zoo_root, MODEL, "mac").resources.stages["gate"].phases
    assert deeper["oracle"] == base["oracle"]
    assert deeper["fp16_load_and_quantize"] > base["fp16_load_and_quantize"]  # the export loads them all
    edit_recipe(zoo_root, "num-experts = 8", "num-experts = 16")
    wider = plan_for(zoo_root, MODEL, "mac").resources.stages["gate"].phases
    assert wider["oracle"] > deeper["oracle"]


def test_the_resource_model_does_not_change_the_plan_hash(monkeypatch):
    before = plan_for(REPO, "lfm2.5-8b-a1b", "mac")
    monkeypatch.setattr(footprint, "CONVERTER_COPIES", footprint.CONVERTER_COPIES * 2)
    after = plan_for(REPO, "lfm2.5-8b-a1b", "mac")
    assert after.resources != before.resources
    assert after.plan_hash == before.plan_hash  # bundles and catalog records stay valid


def test_plan_with_resources_does_not_import_heavy_stacks():
    code = (
        "import sys; from zootool.cli.app import main; sys.argv=['zoo','plan','lfm2.5-8b-a1b','--target','mac','--json']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('torch','coreai','huggingface_hub','transformers') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert '"resources"' in result.stdout
    assert result.stderr.strip().endswith("HEAVY="), result.stderr


def test_machine_reads_meminfo_and_disk_usage(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    monkeypatch.delenv(DISK_ENV, raising=False)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683656 kB\nMemFree:         1000 kB\nMemAvailable:    2048 kB\n")
    monkeypatch.setattr("zootool.build.resources.MEMINFO", meminfo)
    here = machine({"build": tmp_path / "not" / "made" / "yet"})
    assert here.memory_bytes == 2048 * 1024
    assert here.folders["build"].free_bytes == shutil.disk_usage(tmp_path).free
    monkeypatch.setattr("zootool.build.resources.MEMINFO", tmp_path / "absent")
    assert machine({}).memory_bytes is None  # not checked where the system does not say


def test_machine_overrides_come_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "123")
    monkeypatch.setenv(DISK_ENV, "456")
    here = machine({"build": tmp_path, "temp": tmp_path})
    assert here.memory_bytes == 123 and {f.free_bytes for f in here.folders.values()} == {456}
    monkeypatch.setenv(DISK_ENV, "lots")
    with pytest.raises(ConfigError, match=DISK_ENV):
        machine({"build": tmp_path})


def _needs(**stages: tuple[int, int, str]) -> ResourceEstimate:
    return ResourceEstimate(stages={
        name: StageResources(memory_bytes=m, disk_bytes=d, disk_location=loc, phases={"all": m})
        for name, (m, d, loc) in stages.items()
    })


def _machine(memory: int, devices: dict[str, int], free: int) -> Machine:
    return Machine(memory_bytes=memory, folders={
        loc: Folder(path=Path(f"/{loc}"), device=dev, free_bytes=free) for loc, dev in devices.items()
    })


def test_memory_is_the_largest_stage_and_disk_adds_up_per_file_system():
    needs = _needs(export=(600, 60, "build"), gate=(900, 60, "temp"))
    one_disk = _machine(1000, {"build": 1, "temp": 1}, free=100)
    memory, disk = shortfalls(needs, ["export", "gate"], one_disk)
    assert memory == []  # 900 fits in 1000: stages run one after another
    assert disk == [f"export + gate need about {gb(120)} of free disk in /build and /temp "
                    f"(export {gb(60)}, gate {gb(60)}), {gb(100)} is free"]
    assert shortfalls(needs, ["export", "gate"], _machine(1000, {"build": 1, "temp": 2}, free=100)) == ([], [])
    memory, _ = shortfalls(needs, ["export", "gate"], _machine(800, {"build": 1, "temp": 2}, free=100))
    assert memory == [f"gate needs about {gb(900)} of memory, {gb(800)} is available"]
    assert shortfalls(needs, ["export"], _machine(800, {"build": 1, "temp": 2}, free=100)) == ([], [])


def test_require_is_one_line_with_a_hint(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "100")
    monkeypatch.setenv(DISK_ENV, "10")
    needs = _needs(export=(600, 60, "build"))
    with pytest.raises(ResourceError) as raised:
        require(needs, ["export"], {"build": tmp_path}, "zoo plan m --target t")
    assert "\n" not in raised.value.message and raised.value.exit_code == 12
    assert "memory" in raised.value.message and "free disk" in raised.value.message
    assert "--ignore-resources" in raised.value.hint and "zoo plan m --target t --json" in raised.value.hint
    require(needs, [], {"build": tmp_path}, "zoo plan m --target t")  # nothing to run: nothing checked


def _refusal(result) -> list[str]:
    assert result.returncode == 12, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("  hint: ")
    return lines


def test_build_refused_for_memory_before_anything_is_written(zoo_root: Path):
    plan = json.loads(run_zoo("plan", MODEL, "--target", "mac", "--json", root=zoo_root).stdout)
    stages = plan["resources"]["stages"]
    largest = max(stages, key=lambda name: stages[name]["memory_bytes"])
    available = stages[largest]["memory_bytes"] - 1
    result = run_zoo("build", MODEL, "--target", "mac", root=zoo_root, env={MEMORY_ENV: str(available)})
    error, hint = _refusal(result)
    assert error == (f"error: {largest} needs about {gb(stages[largest]['memory_bytes'])} of memory, "
                     f"{gb(available)} is available")
    assert "--ignore-resources" in hint
    assert not (zoo_root / "build").exists() and not (zoo_root / ".zoo-cache").exists()


def test_build_refused_for_disk_names_every_stage_on_the_file_system(zoo_root: Path):
    result = run_zoo("build", MODEL, "--target", "mac", "--no-gate", root=zoo_root, env={DISK_ENV: "1000"})
    error, _ = _refusal(result)
    assert "fetch + export need about" in error and "of free disk in" in error and "1.00 kB is free" in error
    assert not (zoo_root / "build").exists()


def test_ignore_resources_gets_past_the_checks(zoo_root: Path, tmp_path: Path):
    weights = tmp_path / "weights"  # enough to reach the checkpoint's checks, which come next
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"")
    args = ("build", MODEL, "--target", "mac", "--weights", str(weights))
    env = {MEMORY_ENV: "1", DISK_ENV: "1"}
    assert run_zoo(*args, root=zoo_root, env=env).returncode == 12
    result = run_zoo(*args, "--ignore-resources", root=zoo_root, env=env)
    # The next check is the checkpoint's (its MIT text would come from the zoo; its config.json is empty).
    assert result.returncode == 2 and f"{weights / 'config.json'}: " in result.stderr, result.stderr


def test_unpinned_source_is_a_recipe_error_before_the_resource_check(zoo_root: Path):
    result = run_zoo("build", "lfm2.5-8b-a1b", "--target", "mac", root=zoo_root, env={MEMORY_ENV: "1"})
    assert result.returncode == 2 and "has no pinned revision" in result.stderr


def test_exit_code_12_is_documented():
    readme = (REPO / "README.md").read_text()
    assert "| 12 |" in readme
    assert "12 not enough memory or free disk" in run_zoo("--help").stdout.replace("\n", " ")
