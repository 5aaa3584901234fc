"""`zoo new Org/Model`: pin the upstream commit, read config.json there, take the license it declares.

Every test seeds a repo on the local test Hub through the real huggingface_hub client and runs
the real `zoo` command in a subprocess against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_zoo
from zootool.config.recipe import load_recipe

pytest_plugins = ["conftest_hub"]
transformers = pytest.importorskip("transformers")

from hubserver import WRITE_TOKEN  # noqa: E402 - tests/ is on sys.path under pytest

REPO_ID = "zoo-org/Some-MoE-1B"
MIT_TEXT = b"MIT License\n\nCopyright (c) 2026 Some Org\n\nPermission is hereby granted, free of charge, ...\n"
APACHE_TEXT = b"\n                                 Apache License\n                           Version 2.0, January 2004\n"
OWN_TEXT = b"Copyright 2026 Some Org. All rights reserved. Use it kindly.\n"


def config_json(hidden: int = 512) -> bytes:
    config = transformers.Lfm2MoeConfig(
        num_hidden_layers=6, layer_types=["conv", "conv", "full_attention", "conv", "full_attention", "conv"],
        hidden_size=hidden, vocab_size=4096, num_experts=8,
    ).to_dict()
    return json.dumps(config).encode()


def card(front_matter: str) -> bytes:
    return f"---\n{front_matter}\n---\n\n# Some MoE\n".encode()


def seed(hub, files: dict[str, bytes], *, private: bool = False, message: str = "seed") -> str:
    """Commit ``files`` to the upstream repo (created on first use); returns the commit sha."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo(REPO_ID, private=private, exist_ok=True)
    return api.create_commit(REPO_ID, [CommitOperationAdd(p, d) for p, d in files.items()], commit_message=message).oid


def zoo_new(zoo_root: Path, hub, *args: str, env: dict | None = None, endpoint: bool = True):
    """``zoo new`` in a fresh interpreter with an empty HF home (no stored login)."""
    where = ["--endpoint", hub.url] if endpoint else []
    home = {"HF_HOME": str(zoo_root / "hf-home"), "HF_TOKEN": ""}
    return run_zoo("new", *args, *where, "--json", root=zoo_root, env={**home, **(env or {})})


def recipes(zoo_root: Path) -> set[str]:
    return {p.name for p in (zoo_root / "recipes").glob("*.toml")}


def test_new_pins_the_commit_and_takes_the_cards_license(zoo_root: Path, hub):
    sha = seed(hub, {"config.json": config_json(), "README.md": card("license: apache-2.0")})
    result = zoo_new(zoo_root, hub, REPO_ID)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert (written["revision"], written["license"]) == (sha, "apache-2.0")
    assert "README.md" in written["license_from"]
    recipe = load_recipe(Path(written["path"]))
    assert (recipe.model.source.hub, recipe.model.source.revision) == (REPO_ID, sha)
    assert recipe.model.license == "apache-2.0" and recipe.architecture.hidden_size == 512
    assert sha in Path(written["path"]).read_text().splitlines()[0]  # the header says what it was read from
    plan = run_zoo("plan", written["id"], "--target", "mac", "--json", root=zoo_root)
    assert plan.returncode == 0, plan.stderr


def test_revision_resolves_to_its_commit_and_config_is_read_there(zoo_root: Path, hub):
    from huggingface_hub import HfApi

    first = seed(hub, {"config.json": config_json(512), "README.md": card("license: mit")})
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_tag(REPO_ID, tag="v1", revision=first)
    second = seed(hub, {"config.json": config_json(1024)}, message="wider")

    for args, sha, hidden in ((["--revision", "v1"], first, 512), ([], second, 1024), (["--revision", first], first, 512)):
        result = zoo_new(zoo_root, hub, REPO_ID, "--id", f"moe-{len(recipes(zoo_root))}", *args)
        assert result.returncode == 0, result.stderr
        recipe = load_recipe(Path(json.loads(result.stdout)["path"]))
        assert (recipe.model.source.revision, recipe.architecture.hidden_size) == (sha, hidden), args


@pytest.mark.parametrize("files,args,license_id,evidence", [
    ({"README.md": card("license: other\nlicense_name: lfm1.0")}, [], "lfm1.0", "license_name: lfm1.0"),
    ({"README.md": card("pipeline_tag: text-generation"), "LICENSE": MIT_TEXT}, [], "mit", "LICENSE file"),
    ({"LICENSE": APACHE_TEXT}, [], "apache-2.0", "LICENSE file"),  # no card at all
    ({"README.md": card("license: apache-2.0"), "LICENSE": APACHE_TEXT}, ["--license", "apache-2.0"], "apache-2.0",
     "README.md"),
    ({"LICENSE": OWN_TEXT}, ["--license", "mit"], "mit", "--license"),  # a person read an unrecognised text
    ({"README.md": card("license: gemma")}, [], "gemma", "README.md license: gemma"),
    ({"LICENSE.txt": b"LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n"},
     [], "llama3.2", "LICENSE.txt file"),
    ({"README.md": card("license: llama3.1")}, [], "llama3.1", "README.md license: llama3.1"),
], ids=["other+license_name", "LICENSE-mit", "LICENSE-apache", "card-and-text-agree", "named-by-hand", "card-gemma",
        "LICENSE.txt-llama3.2", "card-llama3.1"])
def test_license_comes_from_what_the_upstream_declares(zoo_root: Path, hub, files, args, license_id, evidence):
    seed(hub, {"config.json": config_json(), **files})
    result = zoo_new(zoo_root, hub, REPO_ID, *args)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["license"] == license_id and evidence in written["license_from"]
    assert load_recipe(Path(written["path"])).model.license == license_id


@pytest.mark.parametrize("files,args,message,hint", [
    ({"README.md": card("license: gpl-3.0")}, [], "license: gpl-3.0, a license zoo/licenses/ does not know",
     "add zoo/licenses/gpl-3.0.toml"),
    ({"README.md": card("license: other\nlicense_name: Foo License 1.0")}, [], "license_name: Foo License 1.0",
     "add zoo/licenses/foo-license-1.0.toml"),
    ({"README.md": card("pipeline_tag: text-generation")}, [], "declares no license", "rather than assume one"),
    ({"LICENSE": OWN_TEXT}, [], "LICENSE file is not one the zoo recognises", "pass --license ID"),
    ({"README.md": card("license: apache-2.0"), "LICENSE": MIT_TEXT}, [], "says 'apache-2.0' but the LICENSE file "
     "reads as 'mit'", "contradicts itself"),
    ({"README.md": card("license: apache-2.0")}, ["--license", "mit"], "--license mit disagrees", "drop --license"),
], ids=["unknown-id", "unknown-other", "none", "unrecognised-text", "contradiction", "disagreeing-flag"])
def test_unknown_or_unclear_license_stops_with_what_to_do(zoo_root: Path, hub, files, args, message, hint):
    seed(hub, {"config.json": config_json(), **files})
    before = recipes(zoo_root)
    result = zoo_new(zoo_root, hub, REPO_ID, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and hint in result.stderr
    assert "Traceback" not in result.stderr and recipes(zoo_root) == before


def test_hub_answers_about_the_input_exit_2_and_an_unreachable_hub_exits_9(zoo_root: Path, hub):
    import socket

    seed(hub, {"README.md": card("license: mit")})  # no config.json
    cases = [
        (["zoo-org/Nope"], 2, "repository zoo-org/Nope not found"),
        ([REPO_ID, "--revision", "nope"], 2, f"{REPO_ID} has no revision nope"),
        ([REPO_ID], 2, "no config.json"),
        (["not-a-hub-id"], 2, "is not a Hub model id"),
        ([REPO_ID, "--config", "config.json", "--license", "mit"], 2, "needs one source"),
    ]
    for args, code, message in cases:
        result = zoo_new(zoo_root, hub, *args)
        assert (result.returncode, message in result.stderr) == (code, True), (args, result.stderr)
        assert "Traceback" not in result.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = zoo_new(zoo_root, hub, REPO_ID, endpoint=False, env={"HF_ENDPOINT": closed})
    assert result.returncode == 9 and "could not reach the Hub" in result.stderr and "Traceback" not in result.stderr


def test_hf_endpoint_and_a_private_repo_with_hf_token_never_printed(zoo_root: Path, hub):
    sha = seed(hub, {"config.json": config_json(), "README.md": card("license: mit")}, private=True)
    anonymous = zoo_new(zoo_root, hub, REPO_ID, endpoint=False, env={"HF_ENDPOINT": hub.url})
    assert anonymous.returncode == 2 and "not found" in anonymous.stderr  # private: invisible without a token

    result = zoo_new(zoo_root, hub, REPO_ID, endpoint=False, env={"HF_ENDPOINT": hub.url, "HF_TOKEN": WRITE_TOKEN})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["revision"] == sha
    written = Path(json.loads(result.stdout)["path"]).read_text()
    assert all(WRITE_TOKEN not in text for text in (result.stdout, result.stderr, written))
