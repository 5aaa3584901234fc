"""`zoo status`, row selection, the local executor's packing and the progress views (no conversion here)."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import invoke_zoo


def status(root: Path, *args: str) -> dict[tuple[str, str], dict]:
    result = invoke_zoo("status", "--json", *args, root=root)
    assert result.exit_code == 0, result.output
    return {(row["model"], row["target"]): row for row in json.loads(result.stdout)}


def fake_bundle(root: Path, model: str, target: str, plan_hash: str, verdict: str = "CLEAN") -> None:
    """What status reads of a bundle: its manifest's plan hash and gate."""
    bundle = root / "build" / model / target
    bundle.mkdir(parents=True)
    gate = {"verdict": verdict, "line": f"{verdict} (+0 flips/41)", "passed": verdict != "FAIL"}
    (bundle / "manifest.json").write_text(json.dumps({"recipe": model, "target": target, "plan_hash": plan_hash,
                                                      "gate": gate}))


def set_quant(root: Path, model: str, target: str, scheme: str) -> None:
    path = root / "recipes" / f"{model}.toml"
    text = path.read_text()
    table = text.index(f"[targets.{target}]")
    start = text.index("quant = ", table)
    end = text.index("\n", start)
    path.write_text(text[:start] + f'quant = "{scheme}"' + text[end:])


def test_fresh_zoo_is_never_built_and_the_unpinned_flagship_says_so(zoo_root: Path):
    rows = status(zoo_root)
    assert len(rows) == 16  # 4 recipes x 4 targets, less the flagship's 2 Core ML ones
    assert {rows[("lfm2.5-8b-a1b", t)]["state"] for t in ("mac", "iphone")} == {"unpinned"}
    others = [row for key, row in rows.items() if key[0] != "lfm2.5-8b-a1b"]
    assert {row["state"] for row in others} == {"never built"}
    row = rows[("tiny-llama", "mac")]
    plan = json.loads(invoke_zoo("plan", "tiny-llama", "--target", "mac", "--json", root=zoo_root).stdout)
    assert row["plan_hash"] == plan["plan_hash"] and row["built_plan_hash"] is None
    assert row["memory_bytes"] == max(s["memory_bytes"] for s in plan["resources"]["stages"].values())
    assert row["estimated_bytes"] == plan["budget"]["estimated_bytes"] and 10 < row["seconds"] < 600
    assert rows[("tiny-lfm2-moe", "iphone")]["cpus"] == 2 and row["cpus"] == 1  # k-means clusters on threads


def test_editing_one_quant_scheme_makes_exactly_that_row_outdated(zoo_root: Path):
    before = status(zoo_root, "tiny-*")
    for (model, target), row in before.items():
        fake_bundle(zoo_root, model, target, row["plan_hash"])
    assert {row["state"] for row in status(zoo_root, "tiny-*").values()} == {"gated"}
    set_quant(zoo_root, "tiny-llama", "iphone", "fp16")
    after = status(zoo_root, "tiny-*")
    changed = {key for key, row in after.items() if row["state"] != "gated"}
    assert changed == {("tiny-llama", "iphone")}
    row = after[("tiny-llama", "iphone")]
    assert row["state"] == "outdated" and row["outdated"] and not row["built"]
    assert row["built_plan_hash"] == before[("tiny-llama", "iphone")]["plan_hash"] != row["plan_hash"]
    dry = invoke_zoo("build", "--all", "--changed", "--dry-run", "--json", root=zoo_root)
    assert dry.exit_code == 0, dry.output
    picked = json.loads(dry.stdout)
    chosen = {(r["model"], r["target"]) for r in picked["rows"]}
    dense_targets = ("mac", "iphone", "mac-macos15", "iphone-ios18")
    never_built = {(model, t) for model in ("qwen3-0.6b", "smollm2-135m-instruct") for t in dense_targets}
    assert chosen == {("tiny-llama", "iphone"), *never_built}
    assert {(r["model"], r["state"]) for r in picked["skipped"]} == {("lfm2.5-8b-a1b", "unpinned")}


def test_states_from_records_gates_and_budget(zoo_root: Path):
    from zootool.bundle.manifest import Manifest
    from zootool.catalog.records import record_build, record_publish
    from zootool.config.zoo_data import Zoo

    rows = status(zoo_root, "tiny-lfm2-moe")
    mac, iphone = rows[("tiny-lfm2-moe", "mac")], rows[("tiny-lfm2-moe", "iphone")]
    manifest = {"recipe": "tiny-lfm2-moe", "target": "mac", "plan_hash": mac["plan_hash"], "scheme": "sym8",
                "kernel": "gather_qmm", "size": {}, "gate": {"verdict": "PASS", "line": "PASS", "passed": True},
                "publishable": True}
    record_build(Zoo(zoo_root), Manifest.model_validate(manifest))
    record_publish(Zoo(zoo_root), "tiny-lfm2-moe", "mac", "coreai-zoo/Tiny", "a" * 40, "v1")
    fake_bundle(zoo_root, "tiny-lfm2-moe", "iphone", iphone["plan_hash"], verdict="FAIL")
    set_quant(zoo_root, "lfm2.5-8b-a1b", "iphone", "fp16")  # 17 GB on a 6 GB budget
    rows = status(zoo_root)
    assert (rows[("tiny-lfm2-moe", "mac")]["state"], rows[("tiny-lfm2-moe", "mac")]["built_from"]) == \
        ("published", "record")
    assert rows[("tiny-lfm2-moe", "iphone")]["state"] == "gate failed"
    assert rows[("lfm2.5-8b-a1b", "iphone")]["state"] == "over budget"
    assert rows[("lfm2.5-8b-a1b", "iphone")]["over_budget"]
    table = invoke_zoo("status", root=zoo_root, env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert re.search(r"tiny-lfm2-moe +mac +sym8 +\w{8} +\w{8}\* +published", table.stdout), table.stdout
    narrow = invoke_zoo("status", root=zoo_root, env={"COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout


def test_selection_globs_targets_and_unknown_names(zoo_root: Path):
    picked = json.loads(invoke_zoo("build", "tiny-*", "--target", "mac*", "--dry-run", "--json",
                                   root=zoo_root).stdout)
    assert {(r["model"], r["target"]) for r in picked["rows"]} == {
        ("tiny-lfm2-moe", "mac"), ("tiny-llama", "mac"), ("tiny-llama", "mac-macos15")}
    unknown = invoke_zoo("build", "tiny-lama", "--all", root=zoo_root)
    assert unknown.exit_code == 2 and "no recipe matches 'tiny-lama'" in unknown.output
    assert "did you mean 'tiny-llama'" in unknown.output
    nothing = invoke_zoo("build", root=zoo_root)
    assert nothing.exit_code == 2 and "--all" in nothing.output
    no_target = invoke_zoo("publish", "tiny-llama", "--target", "ipad*", "--dry-run", root=zoo_root)
    assert no_target.exit_code == 2 and "no target" in no_target.output
    one_only = invoke_zoo("build", "tiny-*", "--quant", "fp16", root=zoo_root)
    assert one_only.exit_code == 2 and "--quant applies to one model" in one_only.output


def test_a_recipe_that_does_not_load_is_a_failed_row_and_the_others_go_on(zoo_root: Path):
    (zoo_root / "recipes" / "broken.toml").write_text("schema = 1\n[model\n")
    result = invoke_zoo("publish", "--all", "--dry-run", "--json", root=zoo_root)
    rows = json.loads(result.stdout)
    broken = [r for r in rows if r["model"] == "broken"]
    assert broken and broken[0]["exit_code"] == 2 and broken[0]["outcome"] == "failed"
    # every other row ran (and failed: nothing is built), verify's exit 8 is the worst
    assert {r["exit_code"] for r in rows if r["model"] != "broken"} == {8}
    assert len(rows) == 17 and result.exit_code == 8


def test_executor_options_are_checked(zoo_root: Path, monkeypatch):
    bad = invoke_zoo("build", "--all", "--executor", "slurm", root=zoo_root)
    assert bad.exit_code == 2 and "not an executor" in bad.output
    stray = invoke_zoo("build", "--all", "--address", "127.0.0.1:6379", root=zoo_root)
    assert stray.exit_code == 2 and "--address applies to --executor ray" in stray.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    missing = invoke_zoo("build", "tiny-llama", "--executor", "ray", root=zoo_root)
    assert missing.exit_code == 4 and "zootool[cluster]" in missing.output


def test_publish_options_are_checked_before_anything_is_built(zoo_root: Path, tmp_path: Path):
    from conftest import run_zoo

    stray = invoke_zoo("build", "--all", "--endpoint", "http://127.0.0.1:1", root=zoo_root)
    assert stray.exit_code == 2 and "--endpoint applies to zoo build --publish" in stray.output
    ungated = invoke_zoo("build", "--all", "--publish", "--no-gate", root=zoo_root)
    assert ungated.exit_code == 2 and "--publish needs the quality gate" in ungated.output
    no_token = run_zoo("build", "tiny-llama", "--target", "mac", "--publish", "--endpoint", "http://127.0.0.1:1",
                       root=zoo_root, env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")})
    assert no_token.returncode == 7 and "not logged in to the Hugging Face Hub" in no_token.stderr, no_token.stderr
    assert "Traceback" not in no_token.stderr and not (zoo_root / "build").exists()


# -- the local executor's packing ------------------------------------------------------------

def job(name: str, memory_gb: float, cpus: int = 1, disk_gb: float = 0):
    from zootool.build.jobs import BuildJob, BuildNeeds

    return BuildJob(model=name, target="mac", plan_hash="0" * 16,
                    needs=BuildNeeds(cpus=cpus, memory_bytes=int(memory_gb * 1e9), disk_bytes=int(disk_gb * 1e9)))


def test_builds_are_packed_by_predicted_memory_and_cpus():
    from zootool.build.executor_local import Capacity, startable

    names = lambda jobs: [j.model for j in jobs]  # noqa: E731
    machine = Capacity(cpus=4, memory_bytes=10 * 10**9)
    waiting = [job("a", 6), job("b", 5), job("c", 3), job("d", 1)]
    assert names(startable(waiting, [], machine)) == ["a", "c", "d"]  # b waits: 6 + 5 > 10
    assert names(startable(waiting[1:], [job("a", 6)], machine)) == ["c", "d"]
    assert names(startable([job("big", 30)], [job("a", 1)], machine)) == []  # an over-large build waits...
    assert names(startable([job("big", 30)], [], machine)) == ["big"]  # ...until it would run alone
    assert names(startable([job("k", 1, cpus=2), job("e", 1), job("f", 1)], [job("a", 1)], Capacity(
        cpus=3, memory_bytes=None))) == ["k"]
    assert names(startable([job("x", 1, cpus=8)], [], Capacity(cpus=2, memory_bytes=None))) == ["x"]


def test_builds_are_packed_by_predicted_disk_too():
    from zootool.build.executor_local import Capacity, startable

    names = lambda jobs: [j.model for j in jobs]  # noqa: E731
    machine = Capacity(cpus=8, memory_bytes=None, disk_bytes=20 * 10**9)
    waiting = [job("a", 1, disk_gb=12), job("b", 1, disk_gb=9), job("c", 1, disk_gb=8)]
    assert names(startable(waiting, [], machine)) == ["a", "c"]  # b waits: 12 + 9 > 20
    assert names(startable(waiting[1:], [job("a", 1, disk_gb=12)], machine)) == ["c"]
    assert names(startable([job("huge", 1, disk_gb=50)], [job("a", 1, disk_gb=1)], machine)) == []
    assert names(startable([job("huge", 1, disk_gb=50)], [], machine)) == ["huge"]  # alone: its pre-flight decides
    assert names(startable(waiting, [], machine.model_copy(update={"disk_bytes": None}))) == ["a", "b", "c"]


def test_real_plans_are_packed_by_their_predicted_disk(zoo_root: Path, monkeypatch):
    """The two tiny-llama Core AI targets, against free disk that holds one build's prediction but not two."""
    from zootool.build.batch import BatchOptions, _job
    from zootool.build.executor_local import machine_capacity, startable
    from zootool.build.selection import select
    from zootool.config.zoo_data import Zoo

    rows = select(Zoo(zoo_root), str, ["tiny-llama"], ["mac", "iphone"], everything=False, changed=False).rows
    jobs = [_job(row, BatchOptions()) for row in rows]
    assert len(jobs) == 2 and all(j.needs.disk_bytes > 0 for j in jobs)
    monkeypatch.setenv("ZOO_AVAILABLE_MEMORY_BYTES", str(10**12))
    monkeypatch.setenv("ZOO_FREE_DISK_BYTES", str(max(j.needs.disk_bytes for j in jobs) * 3 // 2))
    assert startable(jobs, [], machine_capacity(zoo_root)) == jobs[:1]
    monkeypatch.setenv("ZOO_FREE_DISK_BYTES", str(sum(j.needs.disk_bytes for j in jobs)))
    assert startable(jobs, [], machine_capacity(zoo_root)) == jobs


def test_capacity_reads_the_memory_and_disk_seams(monkeypatch, tmp_path: Path):
    import shutil

    from zootool.build.executor_local import machine_capacity

    assert machine_capacity(tmp_path).disk_bytes == pytest.approx(shutil.disk_usage(tmp_path).free, rel=0.01)
    monkeypatch.setenv("ZOO_AVAILABLE_MEMORY_BYTES", "1234567")
    monkeypatch.setenv("ZOO_FREE_DISK_BYTES", "7654321")
    capacity = machine_capacity(tmp_path, max_builds=1)
    assert capacity.memory_bytes == 1234567 and capacity.disk_bytes == 7654321 and capacity.cpus == 1


def test_ray_tasks_ask_for_the_plan_s_resources_at_most_a_whole_node():
    from zootool.build.executor_ray import task_resources

    node = {"CPU": 2, "memory": 16 * 10**9}
    assert task_resources(job("small", 1), node) == {"num_cpus": 1, "memory": 10**9}
    assert task_resources(job("big", 30, cpus=4), node) == {"num_cpus": 2, "memory": 16 * 10**9}


# -- progress views ----------------------------------------------------------------------------

def events():
    from zootool.build.jobs import JobEvent

    return [JobEvent(model="m", target="mac", kind="waiting", at=100.0),
            JobEvent(model="m", target="mac", kind="start", at=100.0),
            JobEvent(model="m", target="mac", kind="stage", stage="export", at=103.0),
            JobEvent(model="m", target="mac", kind="done", text="exit 0", at=140.0)]


def test_progress_is_plain_lines_when_not_a_terminal():
    from rich.console import Console

    from zootool.cli.batch_view import BatchProgress

    out = io.StringIO()
    with BatchProgress(Console(file=out, force_terminal=False, width=100)) as progress:
        for event in events():
            progress(event)
    assert out.getvalue().splitlines() == [
        "build m --target mac: waiting", "build m --target mac: started",
        "build m --target mac: export (3 s)", "build m --target mac: finished, exit 0 (40 s)"]


def test_progress_on_a_terminal_is_a_live_table():
    from rich.console import Console

    from zootool.cli.batch_view import BatchProgress

    out = io.StringIO()
    with BatchProgress(Console(file=out, force_terminal=True, width=100)) as progress:
        for event in events()[:3]:
            progress(event)
        console = Console(file=io.StringIO(), width=100)
        console.print(progress.table())
    text = console.file.getvalue()
    assert re.search(r"│ m +│ mac +│ running +│ export +│ \d+ s +│", text), text
    assert "build m --target mac: started" not in out.getvalue()  # no plain lines under the live table
