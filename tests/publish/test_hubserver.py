"""The test Hub itself: atomic commits, upload checks, Hub-shaped errors, fault knobs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import httpx2
import pytest

pytest_plugins = ["conftest_hub"]
# huggingface_hub's own LFS PUT passes a file object as ``data=``, which httpx2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

from hubserver import WRITE_TOKEN  # noqa: E402 - tests/ is on sys.path under pytest

REPO_ID = "zoo-org/Server-Checks"
AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def _ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _regular(path: str, content: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "encoding": "base64", "content": base64.b64encode(content).decode()}}


def _batch(hub, oid: str, size: int) -> dict:
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]}
    response = httpx2.post(f"{hub.url}/{REPO_ID}.git/info/lfs/objects/batch", json=body, headers=AUTH)
    response.raise_for_status()
    return response.json()["objects"][0]


@pytest.fixture
def repo(hub):
    from huggingface_hub import HfApi

    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo(REPO_ID)
    return REPO_ID


def test_commit_naming_a_missing_lfs_object_is_refused_whole(hub, repo):
    missing = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "a" * 64, "size": 5}}
    header = {"key": "header", "value": {"summary": "half"}}
    body = _ndjson(header, _regular("a.txt", b"a"), missing)
    response = httpx2.post(f"{hub.url}/api/models/{repo}/commit/main", content=body, headers=AUTH)
    assert response.status_code == 422
    assert set(hub.files(repo)) == {".gitattributes"}
    assert len(hub.commits(repo)) == 1


def test_parent_commit_guards_against_a_moved_branch(hub, repo):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    base = hub.head(repo)
    api.create_commit(repo, [CommitOperationAdd("a.txt", b"one")], commit_message="one")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_commit(repo, [CommitOperationAdd("b.txt", b"two")], commit_message="two", parent_commit=base)
    assert info.value.response.status_code == 412
    assert "b.txt" not in hub.files(repo)


def test_lfs_upload_must_match_its_oid(hub, repo):
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    action = _batch(hub, oid, len(data))["actions"]["upload"]
    assert httpx2.put(action["href"], content=os.urandom(1000)).status_code == 400
    assert "actions" in _batch(hub, oid, len(data))  # still missing

    assert httpx2.put(action["href"], content=data).status_code == 200
    assert "actions" not in _batch(hub, oid, len(data))  # stored: nothing to send


def test_download_errors_are_hub_shaped(hub, repo, hf_cache):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RevisionNotFoundError

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo, "nope.txt", endpoint=hub.url, token=WRITE_TOKEN, cache_dir=hf_cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "README.md", revision="nope", endpoint=hub.url, token=WRITE_TOKEN, cache_dir=hf_cache)


def test_fault_fails_exactly_the_next_n_matching_requests(hub):
    fault = hub.faults.add(r"^/api/whoami-v2$", status=429, times=2, retry_after=0)
    statuses = [httpx2.get(f"{hub.url}/api/whoami-v2", headers=AUTH).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert fault.hits == 2
    assert hub.stats.count("whoami") == 3


def test_unknown_token_is_401_everywhere(hub, repo):
    bad = {"Authorization": "Bearer hf_not_a_real_token"}
    for path in ("api/whoami-v2", f"api/models/{repo}", f"{repo}/resolve/main/.gitattributes"):
        response = httpx2.get(f"{hub.url}/{path}", headers=bad)
        assert response.status_code == 401, path
        assert response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"


def test_paths_info_reports_lfs_sha256_and_blob_ids(hub, repo):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    data = os.urandom(2048)  # binary sample: the server answers "lfs"
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    adds = [CommitOperationAdd("m/w.bin", data), CommitOperationAdd("m/a.txt", b"a")]
    api.create_commit(repo, adds, commit_message="c")
    infos = {i.path: i for i in api.get_paths_info(repo, ["m/w.bin", "m/a.txt", "m", "absent"])}
    assert set(infos) == {"m/w.bin", "m/a.txt", "m"}
    assert isinstance(infos["m"], RepoFolder) and isinstance(infos["m/a.txt"], RepoFile)
    assert infos["m/w.bin"].lfs.sha256 == hashlib.sha256(data).hexdigest() and infos["m/w.bin"].size == 2048
    assert infos["m/a.txt"].lfs is None and infos["m/a.txt"].blob_id == hub.files(repo)["m/a.txt"].oid


# -- strict like the Hub: binary content never lands in git --------------------------------

SEVEN_MB = 7 * 1024 * 1024
NOT_UTF8 = bytes(range(0x80, 0x100))  # no NUL byte, but no UTF-8 text either
EURO_TEXT = ("price: 5 \N{EURO SIGN}\n" * 100).encode()  # 3-byte characters: a 512-byte sample cuts one


def _upload_modes(hub, repo: str, files: dict[str, tuple[bytes, int]]) -> dict[str, str]:
    """Ask preupload about ``path -> (content start, size)`` the way the client does (first 512 bytes)."""
    items = [{"path": p, "sample": base64.b64encode(head[:512]).decode(), "size": size}
             for p, (head, size) in files.items()]
    response = httpx2.post(f"{hub.url}/api/models/{repo}/preupload/main", json={"files": items}, headers=AUTH)
    response.raise_for_status()
    return {f["path"]: f["uploadMode"] for f in response.json()["files"]}


@pytest.mark.parametrize("path,head,size,mode", [
    ("notes.txt", b"plain text\n", 11, "regular"),
    ("weights.dat", b"\x00\x01\x02 binary", 4096, "lfs"),  # a NUL byte, in a name no pattern routes
    ("weights.dat", NOT_UTF8, len(NOT_UTF8), "lfs"),
    ("prices.txt", EURO_TEXT, len(EURO_TEXT), "regular"),  # cut mid-character is still text
    ("big.txt", b"text " * 100, 10 * 1024 * 1024, "lfs"),  # 10 MiB or more
    ("model.mlirb", b"text that .gitattributes routes", 31, "lfs"),
])
def test_preupload_decides_like_the_hub(hub, repo, path, head, size, mode):
    assert _upload_modes(hub, repo, {path: (head, size)}) == {path: mode}


def test_preupload_follows_the_repos_own_gitattributes(hub, repo):
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_commit(
        repo, [CommitOperationAdd(".gitattributes", b"*.dat filter=lfs diff=lfs merge=lfs -text\n")],
        commit_message="route only .dat",
    )
    files = {"model.mlirb": (b"text", 4), "x.dat": (b"text", 4), "y.bin": (b"\x00", 1)}
    assert _upload_modes(hub, repo, files) == {"model.mlirb": "regular", "x.dat": "lfs", "y.bin": "lfs"}

    api.delete_file(".gitattributes", repo, commit_message="no patterns at all")
    assert _upload_modes(hub, repo, files) == {"model.mlirb": "regular", "x.dat": "regular", "y.bin": "lfs"}


@pytest.mark.parametrize("content", [os.urandom(SEVEN_MB), NOT_UTF8 * 64], ids=["7MB-random", "not-utf8"])
def test_commit_carrying_binary_as_a_regular_file_is_refused(hub, repo, content):
    header = {"key": "header", "value": {"summary": "binary in git"}}
    body = _ndjson(header, _regular("notes.md", b"fine"), _regular("m.aimodel/main.mlirb", content))
    response = httpx2.post(f"{hub.url}/api/models/{repo}/commit/main", content=body, headers=AUTH)
    assert response.status_code == 400
    assert "binary files" in response.headers["X-Error-Message"]
    assert "main.mlirb" in response.json()["error"]
    assert set(hub.files(repo)) == {".gitattributes"} and len(hub.commits(repo)) == 1


def test_client_routes_binary_content_through_lfs_whatever_its_name(hub, repo):
    from huggingface_hub import CommitOperationAdd, HfApi

    data = os.urandom(4096)
    adds = [CommitOperationAdd("weights.custom", data), CommitOperationAdd("notes.custom", b"text")]
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_commit(repo, adds, commit_message="c")
    files = hub.files(repo)
    assert files["weights.custom"].is_lfs and files["weights.custom"].lfs_sha256 == hashlib.sha256(data).hexdigest()
    assert not files["notes.custom"].is_lfs and files["notes.custom"].content == b"text"


# -- Xet: hf_xet uploads into a local CAS the write token names ----------------------------

XET_ONLY = pytest.mark.parametrize("transfer", ["xet"], indirect=True)
OTHER_REPO = "zoo-org/Server-Checks-Other"


def _xet_upload(hub, repo: str, path: str, data: bytes):
    """Send ``data`` through the real client's Xet path without committing it."""
    from huggingface_hub import CommitOperationAdd, HfApi

    add = CommitOperationAdd(path, data)
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).preupload_lfs_files(repo, additions=[add])
    return add


def _lfs_pointer_commit(hub, repo: str, path: str, sha256: str, size: int):
    pointer = {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": sha256, "size": size}}
    body = _ndjson({"key": "header", "value": {"summary": "pointer"}}, pointer)
    return httpx2.post(f"{hub.url}/api/models/{repo}/commit/main", content=body, headers=AUTH)


@XET_ONLY
def test_xet_tokens_name_the_repos_cas_and_need_the_right_access(hub, repo):
    from hubserver import READ_TOKEN

    write = httpx2.get(f"{hub.url}/api/models/{repo}/xet-write-token/main", headers=AUTH)
    assert write.status_code == 200
    body = write.json()
    assert body["casUrl"].startswith("local:///") and body["exp"] > time.time() + 600 and body["accessToken"]
    assert write.headers["X-Xet-Cas-Url"] == body["casUrl"]
    assert write.headers["X-Xet-Access-Token"] == body["accessToken"]
    assert int(write.headers["X-Xet-Token-Expiration"]) == body["exp"]
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert httpx2.get(f"{hub.url}/api/models/{repo}/xet-write-token/main", headers=read_only).status_code == 403
    assert httpx2.get(f"{hub.url}/api/models/{repo}/xet-write-token/nope", headers=AUTH).status_code == 404
    assert httpx2.get(f"{hub.url}/api/models/{repo}/xet-read-token/main", headers=read_only).status_code == 200
    hub.xet_enabled = False
    assert httpx2.get(f"{hub.url}/api/models/{repo}/xet-write-token/main", headers=AUTH).status_code == 501


@XET_ONLY
def test_xet_upload_is_committed_with_the_hash_hf_xet_computes(hub, repo, tmp_path):
    import hf_xet
    from huggingface_hub import HfApi

    data = os.urandom(300_000)
    (tmp_path / "w.bin").write_bytes(data)
    add = _xet_upload(hub, repo, "w.bin", data)
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_commit(repo, [add], commit_message="xet")
    info = api.get_paths_info(repo, ["w.bin"])[0]
    expected = hf_xet.hash_files([str(tmp_path / "w.bin")])[0].hash  # hf_xet's own answer, no upload
    assert info.xet_hash == expected and info.lfs.sha256 == hashlib.sha256(data).hexdigest()
    assert hub.stats.count("lfs_batch") == 0 and hub.stats.count("lfs_upload") == 0


@XET_ONLY
def test_commit_naming_xet_content_never_uploaded_to_this_repo_is_refused(hub, repo):
    from huggingface_hub import HfApi

    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo(OTHER_REPO)
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    _xet_upload(hub, OTHER_REPO, "w.bin", data)

    assert _lfs_pointer_commit(hub, repo, "w.bin", sha, len(data)).status_code == 422  # uploaded elsewhere
    assert _lfs_pointer_commit(hub, OTHER_REPO, "w.bin", sha, len(data) + 1).status_code == 422  # wrong size
    assert _lfs_pointer_commit(hub, OTHER_REPO, "w.bin", sha, len(data)).status_code == 200
    assert hub.files(OTHER_REPO)["w.bin"].xet_hash and "w.bin" not in hub.files(repo)
