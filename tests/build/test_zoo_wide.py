"""`zoo build --all` end to end: the local executor, then a real local Ray cluster (2 CPUs on 127.0.0.1).

The zoo here is tiny-llama with its two Core AI targets and the unpinned flagship (which
`--changed` must skip, and whose builds fail fast without a download): four real conversions
and gates in all, two at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_zoo

pytest.importorskip("coreai_torch")
pytest_plugins = ["conftest_hub"]
pytestmark = pytest.mark.slow  # every test here converts (or reads what the module's fixtures converted)

MODEL = "tiny-llama"
TARGETS = ("mac", "iphone")
FLAGSHIP = "lfm2.5-8b-a1b"


def small_zoo(dest: Path) -> Path:
    """recipes/ with tiny-llama (mac and iphone only) and the flagship; zoo/ and cards/ as in the repo."""
    for name in ("zoo", "cards"):
        shutil.copytree(REPO / name, dest / name)
    (dest / "recipes").mkdir()
    shutil.copyfile(REPO / "recipes" / f"{FLAGSHIP}.toml", dest / "recipes" / f"{FLAGSHIP}.toml")
    text = (REPO / "recipes" / f"{MODEL}.toml").read_text()
    kept = re.split(r"(?m)^(?=\[targets\.)", text)
    text = "".join(part for part in kept if not part.startswith(("[targets.mac-macos15]", "[targets.iphone-ios18]")))
    # the Hub look-alike's write token owns the zoo-org namespace
    (dest / "recipes" / f"{MODEL}.toml").write_text(text.replace('"coreai-zoo/', '"zoo-org/'))
    return dest


def zoo_json(*args: str, root: Path, expect: int = 0) -> list | dict:
    result = run_zoo(*args, "--json", root=root)
    assert result.returncode == expect, result.stdout + result.stderr
    return json.loads(result.stdout)


def by_row(results: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["target"]): r for r in results}


def manifest(root: Path, target: str) -> dict:
    return json.loads((root / "build" / MODEL / target / "manifest.json").read_text())


def gate(root: Path, target: str) -> dict:
    """The gate's verdict and both sides' tokens (the transcript's versions and runtimes aside)."""
    transcript = json.loads((root / "build" / MODEL / target / "gate.json").read_text())
    return {"verdict": transcript["verdict"], "line": transcript["line"], "oracle": transcript["oracle_tokens"],
            "fp16": transcript["fp16"]["tokens"], "candidate": transcript["candidate"]["tokens"]}


def record(root: Path, target: str) -> dict:
    return json.loads((root / "zoo" / "records" / MODEL / f"{target}.json").read_text())


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(path) for path in folder.rglob("*")
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    """A fresh zoo built with `zoo build --all --changed --record` (kept as it was for comparisons)."""
    root = small_zoo(tmp_path_factory.mktemp("zoo-local"))
    results = zoo_json("build", "--all", "--changed", "--record", root=root)
    snapshot = {t: {"manifest": manifest(root, t), "record": record(root, t), "gate": gate(root, t)} for t in TARGETS}
    return {"root": root, "results": results, "built": snapshot}


def test_fresh_clone_builds_exactly_the_never_built_tiny_targets(local):
    rows = by_row(local["results"])
    assert {key for key, r in rows.items() if r["outcome"] == "built"} == {(MODEL, t) for t in TARGETS}
    assert {key: r["outcome"] for key, r in rows.items() if key[0] == FLAGSHIP} == {
        (FLAGSHIP, "mac"): "skipped", (FLAGSHIP, "iphone"): "skipped"}
    assert all(r["exit_code"] == 0 for r in rows.values())
    for target in TARGETS:
        # Passing (CLEAN or PASS: int8-all may introduce one allowed flip) and publishable.
        assert rows[(MODEL, target)]["gate"] in ("CLEAN", "PASS") and manifest(local["root"], target)["publishable"]
        result = run_zoo("verify", str(local["root"] / "build" / MODEL / target), root=local["root"])
        assert result.returncode == 0, result.stderr
    states = {(r["model"], r["target"]): r["state"] for r in zoo_json("status", root=local["root"])}
    assert states == {(MODEL, "mac"): "gated", (MODEL, "iphone"): "gated",
                      (FLAGSHIP, "mac"): "unpinned", (FLAGSHIP, "iphone"): "unpinned"}


def test_second_run_does_nothing(local):
    before = {t: (local["root"] / "build" / MODEL / t / "manifest.json").stat().st_mtime_ns for t in TARGETS}
    result = run_zoo("build", "--all", "--changed", root=local["root"])  # not a terminal: plain lines
    assert result.returncode == 0, result.stderr
    assert "started" not in result.stderr and not re.search(r"\b(built|reused)\b", result.stdout), result.stdout
    assert re.search(r"lfm2\.5-8b-a1b +│ +mac +│ +skipped", result.stdout), result.stdout
    after = {t: (local["root"] / "build" / MODEL / t / "manifest.json").stat().st_mtime_ns for t in TARGETS}
    assert before == after


def test_a_changed_scheme_rebuilds_that_row_only_and_failing_rows_do_not_stop_it(local):
    root = local["root"]
    path = root / "recipes" / f"{MODEL}.toml"
    text = path.read_text()
    start = text.index("[targets.iphone]")
    changed = re.sub(r'quant = "[^"]+"', 'quant = "fp16"', text[start:], count=1)
    assert changed != text[start:]
    path.write_text(text[:start] + changed)
    states = {(r["model"], r["target"]): r["state"] for r in zoo_json("status", root=root)}
    assert states[(MODEL, "iphone")] == "outdated" and states[(MODEL, "mac")] == "gated"
    mac_before = (root / "build" / MODEL / "mac" / "manifest.json").stat().st_mtime_ns
    # --all without --changed: the flagship rows are tried too and fail (unpinned: exit 2) in their
    # own workers (each alone: 51 GB predicted); the command's exit code is the worst row's.
    rows = by_row(zoo_json("build", "--all", root=root, expect=2))
    assert rows[(MODEL, "iphone")]["outcome"] == "built" and rows[(MODEL, "iphone")]["exit_code"] == 0
    assert rows[(MODEL, "mac")]["outcome"] == "reused"
    assert {rows[(FLAGSHIP, t)]["exit_code"] for t in TARGETS} == {2}
    assert "has no pinned revision" in rows[(FLAGSHIP, "mac")]["message"]
    assert manifest(root, "iphone")["scheme"] == "fp16"
    assert (root / "build" / MODEL / "mac" / "manifest.json").stat().st_mtime_ns == mac_before
    states = {(r["model"], r["target"]): r["state"] for r in zoo_json("status", root=root)}
    assert states[(MODEL, "iphone")] == states[(MODEL, "mac")] == "gated"


def test_publish_changed_publishes_each_gated_row_once(local, hub, tmp_path):
    from conftest_hub import WRITE_TOKEN

    env = {"HF_TOKEN": WRITE_TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    args = ("publish", "--all", "--changed", "--endpoint", hub.url, "--record", "--json")
    first = run_zoo(*args, root=local["root"], env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = by_row(json.loads(first.stdout))
    assert {rows[(MODEL, t)]["outcome"] for t in TARGETS} == {"published"}
    assert {rows[(FLAGSHIP, t)]["outcome"] for t in TARGETS} == {"skipped"}
    assert hub.head("zoo-org/Tiny-Llama-CoreAI-iPhone") and hub.head("zoo-org/Tiny-Llama-CoreAI")
    states = {(r["model"], r["target"]): r["state"] for r in zoo_json("status", root=local["root"])}
    assert states[(MODEL, "mac")] == states[(MODEL, "iphone")] == "published"
    again = run_zoo(*args, root=local["root"], env=env)
    assert again.returncode == 0 and {r["outcome"] for r in json.loads(again.stdout)} == {"skipped"}, again.stdout


def hub_matches_bundle(hub, repo: str, bundle: Path, cache: str) -> None:
    """The Hub's files of ``repo``, read back with the real client, are the bundle's, byte for byte."""
    from huggingface_hub import snapshot_download

    from conftest_hub import WRITE_TOKEN
    from zootool.publish.selection import plan_publish

    snapshot = Path(snapshot_download(repo, endpoint=hub.url, token=WRITE_TOKEN, cache_dir=cache))
    remote = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()} - {".gitattributes"}
    assert remote == {f.path for f in plan_publish(bundle).files}
    for path in remote:
        assert (snapshot / path).read_bytes() == (bundle / path).read_bytes(), path


def test_local_workers_publish_too(hub, hf_cache, tmp_path):
    from conftest_hub import WRITE_TOKEN

    root = small_zoo(tmp_path / "zoo-local-publish")
    env = {"HF_TOKEN": WRITE_TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    args = ("build", MODEL, "--target", "mac", "--publish", "--endpoint", hub.url, "--record")
    first = run_zoo(*args, root=root, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"build {MODEL} --target mac: publish" in first.stderr  # in the row's worker, after its gate
    repo = "zoo-org/Tiny-Llama-CoreAI"
    head = hub.head(repo)
    assert record(root, "mac")["publish"]["commit"] == head and len(hub.commits(repo)) == 2
    hub_matches_bundle(hub, repo, root / "build" / MODEL / "mac", hf_cache)
    again = run_zoo(*args, "--json", root=root, env=env)
    assert again.returncode == 0 and [r["outcome"] for r in json.loads(again.stdout)] == ["unchanged"], again.stdout
    assert hub.head(repo) == head
    assert WRITE_TOKEN not in first.stdout + first.stderr + again.stdout + again.stderr
    assert files_holding(root, WRITE_TOKEN) == []


# -- Ray -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_temp(tmp_path_factory) -> Path:
    """The Ray session's folder: its logs are searched for secrets."""
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def ray_cluster(ray_temp):
    """A real Ray cluster on this machine, 127.0.0.1 only, 2 CPUs; stopped when the module's tests end."""
    # Ray binds to the host's routable address unless told the node is a single local one; set
    # before Ray is imported, and inherited by its workers and by the CLI's driver process.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no report to Ray's usage server
    ray = pytest.importorskip("ray")
    context = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False,
                       _temp_dir=str(ray_temp), _node_ip_address="127.0.0.1")
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED"):
            os.environ.pop(name, None)


def comparable(data: dict) -> dict:
    """Records and manifests minus what differs between two conversions of one plan: the exact bytes
    (the converter is not byte-deterministic), file hashes, the day and the build key (local mtimes)."""
    skip = {"built", "build_key", "files", "total_bytes", "size", "publish"}
    return {key: value for key, value in data.items() if key not in skip}


def test_ray_builds_match_local_builds_and_reruns_skip_finished_rows(local, ray_cluster, tmp_path):
    assert ray_cluster.startswith("127.0.0.1:")
    root = small_zoo(tmp_path / "zoo-ray")
    storage = tmp_path / "worker-storage"
    rows = by_row(zoo_json("build", "--all", "--changed", "--record", "--executor", "ray", "--address", ray_cluster,
                           "--worker-storage", str(storage), root=root))
    assert {key for key, r in rows.items() if r["outcome"] == "built"} == {(MODEL, t) for t in TARGETS}
    assert not list((storage / "jobs").iterdir())  # each task's zoo root is removed; the cache stays
    for target in TARGETS:
        local_side = local["built"][target]
        assert comparable(record(root, target)) == comparable(local_side["record"])
        assert comparable(manifest(root, target)) == comparable(local_side["manifest"])
        assert {f["path"] for f in manifest(root, target)["files"]} == {f["path"] for f in local_side["manifest"]["files"]}
        assert gate(root, target) == local_side["gate"]
        assert abs(record(root, target)["size"]["model_bytes"] - local_side["record"]["size"]["model_bytes"]) < 1024
        assert (root / "build" / MODEL / f"{target}.log").is_file()
        result = run_zoo("verify", str(root / "build" / MODEL / target), root=root)
        assert result.returncode == 0, result.stderr
    again = by_row(zoo_json("build", "--all", "--executor", "ray", "--address", ray_cluster,
                            "--worker-storage", str(storage), root=root, expect=2))
    assert {again[(MODEL, t)]["outcome"] for t in TARGETS} == {"reused"}
    assert {again[(FLAGSHIP, t)]["exit_code"] for t in TARGETS} == {2}  # tried on the cluster, refused there


def test_ray_workers_publish_what_a_local_publish_would_and_a_rerun_commits_nothing(
        ray_cluster, ray_temp, hub, hf_cache, tmp_path):
    """zoo build --executor ray --publish: each worker publishes its own gated bundle to the test Hub."""
    from conftest_hub import WRITE_TOKEN

    root = small_zoo(tmp_path / "zoo-ray-publish")
    storage = tmp_path / "worker-storage"
    env = {"HF_TOKEN": WRITE_TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    args = ("build", MODEL, "--executor", "ray", "--address", ray_cluster, "--worker-storage", str(storage),
            "--publish", "--endpoint", hub.url, "--record")
    first = run_zoo(*args, root=root, env=env)  # not a terminal: plain progress lines, sent by the workers
    assert first.returncode == 0, first.stdout + first.stderr
    repos = {"mac": "zoo-org/Tiny-Llama-CoreAI", "iphone": "zoo-org/Tiny-Llama-CoreAI-iPhone"}
    heads = {target: hub.head(repo) for target, repo in repos.items()}
    for target, repo in repos.items():
        # the publish stage ran in the Ray task, after its gate (the driver publishes only reused rows)
        assert re.search(rf"build {MODEL} --target {target}: gate .*\n(.*\n)*build {MODEL} --target {target}: "
                         r"publish", first.stderr), first.stderr
        assert re.search(rf"{MODEL} +│ +{target} +│ +published +│ +0 ", first.stdout), first.stdout
        assert manifest(root, target)["gate"]["verdict"] in ("CLEAN", "PASS")
        assert hub.tags(repo)[manifest(root, target)["bundle_version"]] == heads[target]
        assert len(hub.commits(repo)) == 2  # the repo's creation, then one commit with every file
        # the Hub holds exactly the bundle that came back to the checkout, byte for byte
        hub_matches_bundle(hub, repo, root / "build" / MODEL / target, hf_cache)
        # the publish is recorded in the checkout, as zoo publish records it
        assert record(root, target)["publish"]["commit"] == heads[target]
        assert record(root, target)["publish"]["plan_hash"] == manifest(root, target)["plan_hash"]
        # a local zoo publish of that bundle finds nothing to send
        local = run_zoo("publish", MODEL, "--target", target, "--endpoint", hub.url, "--json", root=root, env=env)
        assert local.returncode == 0 and json.loads(local.stdout)["commit_sha"] is None, local.stdout + local.stderr
    states = {(r["model"], r["target"]): r["state"] for r in zoo_json("status", root=root)}
    assert states[(MODEL, "mac")] == states[(MODEL, "iphone")] == "published"

    again = run_zoo(*args, "--json", root=root, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = by_row(json.loads(again.stdout))
    assert {r["outcome"] for r in rows.values()} == {"unchanged"}
    assert {t: (r["published"]["repo"], r["published"]["commit_sha"]) for (_, t), r in rows.items()} == {
        t: (repo, None) for t, repo in repos.items()}
    assert {target: hub.head(repo) for target, repo in repos.items()} == heads
    assert all(len(hub.commits(repo)) == 2 for repo in repos.values())

    # the token reached the workers, and nothing anyone may read afterwards holds it
    for run in (first, again):
        assert WRITE_TOKEN not in run.stdout + run.stderr
    assert files_holding(root, WRITE_TOKEN) == []
    assert files_holding(ray_temp, f"zoo-build:{MODEL}")  # Ray's session logs name the tasks...
    assert files_holding(ray_temp, WRITE_TOKEN) == []  # ...and hold nothing of the token
    assert files_holding(storage, WRITE_TOKEN) == []
