"""zootool.publisher against our Hub look-alike, driven by the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import traceback
from pathlib import Path

import pytest

from zootool.publish import hub as publisher
from zootool.errors import PublishError, VerifyError
from zootool.publish.hub import plan_publish, publish_bundle, validate_card

pytest_plugins = ["conftest_hub"]
# huggingface_hub's own LFS PUT passes a file object as ``data=``, which httpx2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

from conftest_hub import TRANSFERS, use_transfer  # noqa: E402
from hubserver import READ_TOKEN, WRITE_TOKEN  # noqa: E402 - tests/ is on sys.path under pytest

NAME = "tiny-lfm2-moe"
REPO_ID = "zoo-tester/Tiny-LFM2-MoE-CoreAI"
MODEL_DIR = f"gpu-pipelined/{NAME}"
LARGE = f"{MODEL_DIR}/{NAME}.aimodel/main.mlirb"
TOKENIZER = f"{MODEL_DIR}/tokenizer/tokenizer.json"
LARGE_SIZE = 3 * 1024 * 1024
FAKE_TOKEN = "hf_zooLEAKCANARY7f3a9c1e5b2d8f4a6c0e"
CARD = """---
license: other
license_name: lfm1.0
license_link: LICENSE
base_model: LiquidAI/LFM2.5-8B-A1B
base_model_relation: quantized
library_name: coreai
pipeline_tag: text-generation
tags: [coreai, aimodel, apple-silicon, on-device]
---

# Tiny LFM2 MoE for Core AI

Use the chat template with sampling.
"""
BAD_CARD = CARD.replace("license: other", "license: not-a-license").replace(
    "tags: [coreai, aimodel, apple-silicon, on-device]", "tags: coreai"
)


# -- bundle helpers -----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(bundle: Path) -> dict:
    """List every file of ``bundle`` except the manifest itself, as zootool's packager does."""
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json")
    entries = [{"path": p.relative_to(bundle).as_posix(), "size": p.stat().st_size, "sha256": _sha256(p)}
               for p in files]
    manifest = {"manifest_version": 1, "recipe": NAME, "target": "mac", "plan_hash": "0" * 64, "files": entries}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _bundle_files(seed: int, card: str) -> dict[str, bytes]:
    rng = random.Random(seed)
    metadata = {
        "metadata_version": "0.2",
        "kind": "llm",
        "name": NAME,
        "assets": {"main": f"{NAME}.aimodel"},
        "compression": {"scheme": "sym8"},
    }
    return {
        "README.md": card.encode(),
        "LICENSE": b"LFM Open License v1.0\n\n(test copy)\n",
        "gate.json": json.dumps({"passed": True, "introduced_flips": 1}).encode(),
        LARGE: rng.randbytes(LARGE_SIZE),
        f"{MODEL_DIR}/{NAME}.aimodel/main.hash": rng.randbytes(32).hex().encode(),
        f"{MODEL_DIR}/{NAME}.aimodel/metadata.json": json.dumps({"functions": ["main"]}).encode(),
        f"{MODEL_DIR}/metadata.json": json.dumps(metadata, indent=2).encode(),
        TOKENIZER: json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}).encode(),
    }


def make_bundle(root: Path, *, seed: int = 0, card: str = CARD) -> Path:
    for rel, data in _bundle_files(seed, card).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_manifest(root)
    return root


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


def publish(hub, bundle_dir: Path, **kwargs):
    kwargs.setdefault("token", WRITE_TOKEN)
    return publish_bundle(bundle_dir, REPO_ID, endpoint=hub.url, **kwargs)


def manifest_of(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "manifest.json").read_text())


BOTH_PATHS = pytest.mark.parametrize("transfer", TRANSFERS, indirect=True)


def upload_meter(hub, transfer: str):
    """Bytes of file content sent from now on: LFS PUT bodies, or the chunk data Xet stored."""

    def total() -> int:
        return hub.stats.bytes_in("lfs_upload") if transfer == "lfs" else hub.xet_stored_bytes(REPO_ID)

    start = total()
    return lambda: total() - start


def assert_sent(sent: int, content_bytes: int, transfer: str) -> None:
    """LFS sends the bytes as they are; Xet adds chunk headers and a footer of hashes (well under 1%)."""
    if transfer == "lfs":
        assert sent == content_bytes
    else:
        assert content_bytes <= sent <= content_bytes * 1.01, (sent, content_bytes)


# -- the happy paths ----------------------------------------------------------------------


@BOTH_PATHS
def test_first_publish_commits_every_file_once(hub, bundle, transfer):
    sent = upload_meter(hub, transfer)
    result = publish(hub, bundle, tag="v1")

    manifest = manifest_of(bundle)
    expected = {e["path"] for e in manifest["files"]} | {"manifest.json"}
    assert result.commit_sha == hub.head(REPO_ID)
    assert set(result.files_uploaded) == expected
    assert [c.sha for c in hub.commits(REPO_ID)][1:] == [result.commit_sha]  # creation commit + ours
    remote = hub.files(REPO_ID)
    assert set(remote) == expected | {".gitattributes"}
    assert remote[LARGE].is_lfs and remote[LARGE].lfs_sha256 == _sha256(bundle / LARGE)
    assert not remote["README.md"].is_lfs
    assert_sent(sent(), LARGE_SIZE, transfer)
    assert (remote[LARGE].xet_hash is not None) == (transfer == "xet")
    other = {"lfs": "xet_write_token", "xet": "lfs_batch"}[transfer]
    assert hub.stats.count(other) == 0  # the protocol under test carried the bytes, and only it
    assert result.repo_url == f"{hub.url}/{REPO_ID}"


@BOTH_PATHS
def test_published_files_download_back_identical(hub, bundle, hf_cache, tmp_path, transfer):
    from huggingface_hub import hf_hub_download, snapshot_download

    publish(hub, bundle, tag="v1")
    snapshot = Path(snapshot_download(REPO_ID, endpoint=hub.url, token=WRITE_TOKEN, cache_dir=hf_cache, revision="v1"))
    for entry in manifest_of(bundle)["files"]:
        assert _sha256(snapshot / entry["path"]) == entry["sha256"], entry["path"]
    assert (snapshot / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()

    single = hf_hub_download(REPO_ID, LARGE, endpoint=hub.url, token=WRITE_TOKEN, cache_dir=str(tmp_path / "c2"))
    assert _sha256(Path(single)) == _sha256(bundle / LARGE)
    if transfer == "lfs":
        assert hub.stats.count("cdn", "GET") >= 2  # LFS content came through the cross-origin redirect
    else:
        assert hub.stats.count("cdn") == 0 and hub.stats.count("xet_read_token") >= 1  # read from the CAS


@pytest.mark.parametrize("transfer", ["xet"], indirect=True)
def test_xet_published_files_read_back_without_xet(hub, bundle, hf_cache, monkeypatch):
    from huggingface_hub import snapshot_download

    publish(hub, bundle)
    use_transfer(monkeypatch, "lfs")  # a reader without hf_xet: the Hub's CDN rebuilds the file
    snapshot = Path(snapshot_download(REPO_ID, endpoint=hub.url, token=WRITE_TOKEN, cache_dir=hf_cache))
    assert _sha256(snapshot / LARGE) == _sha256(bundle / LARGE)
    assert hub.stats.count("cdn", "GET") >= 1 and hub.stats.count("xet_read_token") == 0


def test_token_from_hf_token_environment(hub, bundle, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    assert publish(hub, bundle, token=None).commit_sha == hub.head(REPO_ID)


@BOTH_PATHS
def test_unchanged_republish_makes_no_commit_and_sends_no_bytes(hub, bundle, transfer):
    publish(hub, bundle)
    commits_before = len(hub.commits(REPO_ID))
    hub.stats.reset()
    sent = upload_meter(hub, transfer)

    again = publish(hub, bundle)

    assert again.commit_sha is None
    assert again.files_uploaded == () and again.files_deleted == () and again.bytes_uploaded == 0
    assert len(hub.commits(REPO_ID)) == commits_before
    assert sent() == 0 and hub.stats.count("xet_write_token") == 0
    assert hub.stats.count("preupload") == hub.stats.count("lfs_batch") == hub.stats.count("commit") == 0


@BOTH_PATHS
def test_changed_file_sends_only_its_bytes(hub, bundle, transfer):
    publish(hub, bundle)
    (bundle / LARGE).write_bytes(random.Random(99).randbytes(LARGE_SIZE))
    write_manifest(bundle)
    hub.stats.reset()
    sent = upload_meter(hub, transfer)

    result = publish(hub, bundle)

    assert set(result.files_uploaded) == {LARGE, "manifest.json"}
    assert_sent(sent(), LARGE_SIZE, transfer)
    assert hub.stats.count("commit") == 1
    assert len(hub.commits(REPO_ID)) == 3
    assert hub.files(REPO_ID)[LARGE].lfs_sha256 == _sha256(bundle / LARGE)


def test_file_removed_from_bundle_is_deleted_remotely(hub, bundle):
    publish(hub, bundle)
    (bundle / TOKENIZER).unlink()
    write_manifest(bundle)

    result = publish(hub, bundle)

    assert result.files_deleted == (TOKENIZER,)
    remote = hub.files(REPO_ID)
    assert TOKENIZER not in remote
    assert ".gitattributes" in remote and LARGE in remote


def test_stray_file_outside_the_manifest_is_never_uploaded(hub, bundle):
    (bundle / "checkpoint.safetensors").write_bytes(b"\x00" * 1024)
    publish(hub, bundle)
    assert "checkpoint.safetensors" not in hub.files(REPO_ID)


def test_tag_points_at_the_commit_and_is_never_moved(hub, bundle):
    from huggingface_hub import HfApi

    first = publish(hub, bundle, tag="v1")
    refs = HfApi(endpoint=hub.url, token=WRITE_TOKEN).list_repo_refs(REPO_ID)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": first.commit_sha}

    hub.stats.reset()
    same = publish(hub, bundle, tag="v1")
    assert same.commit_sha is None and same.tag == "v1" and hub.stats.count("tag") == 0

    (bundle / "LICENSE").write_text("changed\n")
    write_manifest(bundle)
    with pytest.raises(PublishError, match="already exists") as info:
        publish(hub, bundle, tag="v1")
    assert "new tag" in info.value.hint
    assert hub.head(REPO_ID) == first.commit_sha  # refused before committing


# -- visibility and credentials -------------------------------------------------------------


def test_private_repo_is_visible_only_with_a_token(hub, bundle, hf_cache):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    publish(hub, bundle, private=True)
    api = HfApi(endpoint=hub.url)
    assert api.model_info(REPO_ID, token=WRITE_TOKEN).private is True
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(REPO_ID, token=False)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO_ID, "README.md", endpoint=hub.url, token=False, cache_dir=hf_cache)


def test_private_bundle_is_not_published_into_a_public_repo(hub, bundle):
    publish(hub, bundle)
    with pytest.raises(PublishError, match="is public"):
        publish(hub, bundle, private=True)


def test_bad_token_is_reported_and_never_leaked(hub, bundle, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PublishError) as info:
        publish(hub, bundle, token=FAKE_TOKEN)

    err = info.value
    assert err.exit_code == 7
    assert "401" in err.message and "token" in err.message
    assert "hf auth login" in err.hint
    assert hub.stats.count("create_repo") == 1 and hub.store.get(REPO_ID) is None
    captured = capsys.readouterr()
    trace = "".join(traceback.format_exception(err))
    seen = [str(err), repr(err), err.hint, trace, captured.out, captured.err, caplog.text]
    assert all(FAKE_TOKEN not in text for text in seen)


def test_read_only_token_gets_no_write_access(hub, bundle):
    with pytest.raises(PublishError, match="no write access") as info:
        publish(hub, bundle, token=READ_TOKEN)
    assert "403" in info.value.message and "write role" in info.value.hint


def test_not_logged_in(hub, bundle, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PublishError, match="not logged in") as info:
        publish(hub, bundle, token=None)
    assert "hf auth login" in info.value.hint
    assert hub.stats.count() == 0


# -- failures: retries, atomicity, mapping --------------------------------------------------


def test_upload_failing_with_500_is_retried_then_leaves_no_commit(hub, bundle):
    hub.faults.add(r"^/lfs-upload/", status=500, times=100, retry_after=0)
    with pytest.raises(PublishError, match="500") as info:
        publish(hub, bundle)
    assert "uploading files" in info.value.message and "no commit" in info.value.hint
    assert "running the same command again resumes" in info.value.hint
    assert hub.stats.count("lfs_upload") > 1  # the client retried
    assert hub.stats.count("commit") == 0
    assert len(hub.commits(REPO_ID)) == 1  # only the repo-creation commit

    hub.faults.clear()
    assert publish(hub, bundle).commit_sha == hub.head(REPO_ID)
    assert len(hub.commits(REPO_ID)) == 2


@BOTH_PATHS
def test_commit_failing_with_500_is_retried_then_reported(hub, bundle, monkeypatch, transfer):
    monkeypatch.setattr(publisher, "COMMIT_RETRY_WAITS", (0.05, 0.05))
    hub.faults.add(r"/commit/main$", status=500, times=100)
    with pytest.raises(PublishError, match="500") as info:
        publish(hub, bundle)
    assert "committing" in info.value.message
    assert hub.stats.count("commit") == 3
    assert len(hub.commits(REPO_ID)) == 1

    hub.faults.clear()
    hub.stats.reset()
    sent = upload_meter(hub, transfer)
    assert publish(hub, bundle).commit_sha is not None
    assert sent() == 0  # the objects uploaded before the failure are reused


def test_commit_failing_once_recovers_with_one_commit(hub, bundle, monkeypatch):
    monkeypatch.setattr(publisher, "COMMIT_RETRY_WAITS", (0.05, 0.05))
    hub.faults.add(r"/commit/main$", status=503, times=1)
    result = publish(hub, bundle)
    assert hub.stats.count("commit") == 2
    assert [c.sha for c in hub.commits(REPO_ID)][1:] == [result.commit_sha]


def test_concurrent_push_is_not_overwritten(hub, bundle):
    from hubserver.store import AddFile, FileEntry

    publish(hub, bundle)
    (bundle / "LICENSE").write_text("changed\n")
    write_manifest(bundle)

    def other_push():
        repo = hub.repo(REPO_ID)
        hub.store.commit(repo, "main", [AddFile(FileEntry.regular("NOTES.md", b"theirs"))], message="someone else")

    hub.faults.before(r"/commit/main$", other_push)
    with pytest.raises(PublishError, match="412") as info:
        publish(hub, bundle)
    assert "re-run" in info.value.hint
    assert hub.commits(REPO_ID)[-1].message == "someone else"

    rerun = publish(hub, bundle)  # publishes on top of the other push and keeps its file
    assert rerun.files_uploaded == ("LICENSE", "manifest.json") and rerun.files_deleted == ()
    assert hub.files(REPO_ID)["NOTES.md"].content == b"theirs"


def test_rate_limit_is_mapped(hub, bundle):
    hub.faults.add(r"^/api/repos/create$", status=429, times=1)
    with pytest.raises(PublishError, match="429") as info:
        publish(hub, bundle)
    assert "rate-limiting" in info.value.message and "wait" in info.value.hint


def test_repo_vanishing_mid_publish_is_mapped(hub, bundle):
    hub.faults.add(r"^/api/models/.+/revision/main$", status=404, code="RepoNotFound")
    with pytest.raises(PublishError, match="not found") as info:
        publish(hub, bundle)
    assert REPO_ID in info.value.message and "repo id" in info.value.hint


def test_unreachable_endpoint_is_mapped(bundle, local_network_only):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PublishError, match="cannot reach") as info:
        publish_bundle(bundle, REPO_ID, token=WRITE_TOKEN, endpoint=f"http://127.0.0.1:{port}")
    assert "--endpoint" in info.value.hint
    assert "running the same command again resumes" in info.value.hint


@BOTH_PATHS
def test_connection_lost_mid_publish_hint_says_a_rerun_resumes_and_keeps_blobs(hub, bundle, transfer):
    sent = upload_meter(hub, transfer)
    hub.faults.hang_up(r"/commit/main$")
    with pytest.raises(PublishError, match="cannot reach") as info:
        publish(hub, bundle)
    assert "committing" in info.value.message
    assert "running the same command again resumes" in info.value.hint
    assert "blobs already uploaded are kept" in info.value.hint
    assert len(hub.commits(REPO_ID)) == 1
    assert_sent(sent(), LARGE_SIZE, transfer)

    sent = upload_meter(hub, transfer)
    rerun = publish(hub, bundle)  # what the hint promises: the same call finishes the job
    assert rerun.commit_sha == hub.head(REPO_ID) and len(hub.commits(REPO_ID)) == 2
    assert sent() == 0


@pytest.mark.parametrize("transfer", ["xet"], indirect=True)
def test_xet_token_failing_with_500_is_a_server_error_not_an_lfs_only_endpoint(hub, bundle):
    hub.faults.add(r"/xet-write-token/", status=500, times=100)
    with pytest.raises(PublishError, match="500") as info:
        publish(hub, bundle)
    assert "Xet token" in info.value.message and "HF_HUB_DISABLE_XET" not in info.value.hint
    assert "running the same command again resumes" in info.value.hint
    assert hub.stats.count("xet_write_token") > 1 and len(hub.commits(REPO_ID)) == 1  # hf_xet retried

    hub.faults.clear()
    assert publish(hub, bundle).commit_sha == hub.head(REPO_ID)


@pytest.mark.parametrize("transfer", ["xet"], indirect=True)
def test_xet_upload_refused_by_an_lfs_only_endpoint_says_what_to_set(hub, bundle):
    hub.xet_enabled = False
    with pytest.raises(PublishError, match="Xet") as info:
        publish(hub, bundle)
    assert "HF_HUB_DISABLE_XET=1" in info.value.hint
    assert hub.stats.count("xet_write_token") >= 1 and len(hub.commits(REPO_ID)) == 1


# -- model card validation ------------------------------------------------------------------


def test_card_refused_by_the_hub_stops_before_any_upload(hub, tmp_path):
    bundle = make_bundle(tmp_path / "bad", card=BAD_CARD)
    with pytest.raises(PublishError, match="front matter") as info:
        publish(hub, bundle)
    assert "license" in info.value.message and "tags" in info.value.message
    assert hub.stats.count("validate_yaml") == 1
    assert hub.stats.bytes_in("lfs_upload") == 0
    assert len(hub.commits(REPO_ID)) == 1


def test_validate_card(hub, bundle, tmp_path):
    assert validate_card(bundle / "README.md", endpoint=hub.url) == []
    bare = tmp_path / "bare.md"
    bare.write_text("# no front matter\n")
    assert validate_card(bare, endpoint=hub.url)  # a warning, not an error

    broken = tmp_path / "broken.md"
    broken.write_text("---\nlicense: [unclosed\n---\n")
    with pytest.raises(PublishError, match="cannot be parsed"):
        validate_card(broken, endpoint=hub.url)
    assert hub.stats.count("validate_yaml") == 2  # the broken card never left the machine


# -- offline planning -----------------------------------------------------------------------


def test_plan_needs_no_network(bundle, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plan_publish opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    plan = plan_publish(bundle)

    manifest = manifest_of(bundle)
    assert {f.path for f in plan.files} == {e["path"] for e in manifest["files"]} | {"manifest.json"}
    assert plan.total_bytes == sum(f.size for f in plan.files) > LARGE_SIZE
    narrowed = plan_publish(bundle, allow_patterns=["gpu-pipelined/"])
    assert {f.path for f in narrowed.files} == {e["path"] for e in manifest["files"] if e["path"].startswith("gpu-")}


def test_bundle_not_matching_its_manifest_fails_before_any_request(hub, bundle):
    (bundle / "LICENSE").write_text("edited after packaging\n")
    with pytest.raises(VerifyError, match="LICENSE"):
        publish(hub, bundle)
    assert hub.stats.count() == 0
