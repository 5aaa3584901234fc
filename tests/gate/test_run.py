"""`zoo run`: text from a built bundle through the engine driver, with the bundle's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_zoo, run_zoo

pytest.importorskip("coreai_torch")
pytest_plugins = ["conftest_hub"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = copy_zoo(tmp_path_factory.mktemp("run") / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--no-gate", root=zoo)
    assert result.returncode == 0, result.stderr
    return zoo


@pytest.mark.slow
def test_greedy_run_is_the_drivers_argmax_continuation(root: Path):
    from tokenizers import Tokenizer

    from zootool.bundle.tokenizer_rules import render_chat
    from zootool.gate.engine import EngineDriver
    from zootool.gate.generate import model_folder

    bundle = root / "build" / "tiny-llama" / "mac"
    result = run_zoo("run", str(bundle), "--prompt", "Where do giraffes live?", "--greedy", "--max-tokens", "6",
                     "--json", root=root)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    folder = model_folder(bundle)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))
    config = json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())
    text = render_chat((folder / "tokenizer" / "chat_template.jinja").read_text(), config,
                       [{"role": "user", "content": "Where do giraffes live?"}], generation_prompt=True)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert out["prompt_tokens"] == len(ids) and text.endswith("<|im_start|>assistant\n")
    expected = []
    with EngineDriver(folder) as driver:
        logits = driver.feed(ids)[-1]
        for _ in out["generated_tokens"]:
            expected.append(int(np.argmax(logits)))
            logits = driver.feed([expected[-1]])[-1]
    assert out["generated_tokens"] == expected
    assert out["stopped_by"] in ("eos", "max-tokens") and len(expected) <= 6
    assert out["text"] == tokenizer.decode(expected)


@pytest.mark.slow
def test_run_refuses_what_is_not_a_bundle(root: Path, tmp_path: Path):
    result = run_zoo("run", str(tmp_path), "--prompt", "hi", root=root)
    assert result.returncode == 2 and "neither a bundle" in result.stderr and "Traceback" not in result.stderr


def apple_form(bundle: Path, dest: Path, compression: str | None) -> Path:
    """The bundle's model folder as Apple's exporter (coreai-models @86b363d, export/bundle.py) writes one:
    the tokenizer re-saved by transformers' ``save_pretrained``, no generation_config.json, no manifest,
    and its metadata: ``language.tokenizer`` a Hub id, no ``language.states``, ``compression`` a string
    or null, ``compilation.date`` an ISO datetime."""
    import datetime
    import shutil

    from transformers import AutoTokenizer

    from zootool.gate.generate import model_folder

    source = model_folder(bundle)
    shutil.copytree(source, dest)
    shutil.rmtree(dest / "tokenizer")
    AutoTokenizer.from_pretrained(source / "tokenizer").save_pretrained(dest / "tokenizer")
    (dest / "tokenizer" / "generation_config.json").unlink(missing_ok=True)
    ours = json.loads((source / "metadata.json").read_text())
    language = {key: ours["language"][key] for key in ("vocab_size", "max_context_length")}
    (dest / "metadata.json").write_text(json.dumps({
        "metadata_version": "0.2", "kind": "llm", "name": dest.name, "assets": ours["assets"],
        "language": {"tokenizer": "zoo-org/Tiny-Llama", **language, "embedded_tokenizer": True,
                     "function_map": {"main": ["main"]}},
        "source": {"model_definition": "torch", "hf_model_id": "zoo-org/Tiny-Llama"},
        "compression": compression,
        "compilation": {"date": datetime.datetime.now().astimezone().isoformat(), "targets": []},
    }, indent=2))
    return dest


@pytest.mark.slow
def test_verify_and_run_take_a_model_folder_in_apples_form(root: Path, tmp_path: Path):
    folder = apple_form(root / "build" / "tiny-llama" / "mac", tmp_path / "Tiny-Llama-4bit", "4bit")
    for compression in ("4bit", None):
        metadata = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps({**metadata, "compression": compression}))
        verified = run_zoo("verify", str(folder), "--json", root=root)
        assert verified.returncode == 0, verified.stderr
        report = json.loads(verified.stdout)
        assert report["ok"] and report["problems"] == [] and not report["publishable"]
        assert report["warnings"] == ["tokenizer/generation_config.json: missing; engines sample with the app's "
                                      "settings (Apple's LLM code does not read it), zoo run with its defaults"]
        assert report["publish_refusals"] == ["no manifest.json: not a bundle zootool built"]
    ran = run_zoo("run", str(folder), "--prompt", "Where do giraffes live?", "--greedy", "--max-tokens", "4",
                  "--json", root=root)
    assert ran.returncode == 0, ran.stderr
    ours = run_zoo("run", str(root / "build" / "tiny-llama" / "mac"), "--prompt", "Where do giraffes live?",
                   "--greedy", "--max-tokens", "4", "--json", root=root)
    assert json.loads(ran.stdout) == json.loads(ours.stdout)  # the same model, the same tokens


@pytest.mark.slow
def test_zootool_writes_the_upstream_hub_id_as_the_tokenizer(root: Path):
    from zootool.gate.generate import model_folder

    metadata = json.loads((model_folder(root / "build" / "tiny-llama" / "mac") / "metadata.json").read_text())
    # A generated fixture has no upstream: its publish repo stands where a Hub source's id goes.
    assert metadata["language"]["tokenizer"] == "coreai-zoo/Tiny-Llama-CoreAI"
    from zootool.bundle.package import tokenizer_hub_id
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo
    from zootool.plan.resolve import resolve

    zoo = Zoo(root)
    recipe, path = get(zoo, "qwen3-0.6b")
    assert tokenizer_hub_id(resolve(recipe, "mac", zoo, recipe_file=str(path))) == "Qwen/Qwen3-0.6B"


@pytest.mark.slow
def test_without_an_embedded_tokenizer_run_loads_the_hub_id(root: Path, tmp_path: Path, hub):
    """As LanguageBundle: no tokenizer/tokenizer.json, so AutoTokenizer.from(pretrained: language.tokenizer)."""
    import socket

    from huggingface_hub import CommitOperationAdd, HfApi

    from conftest_hub import WRITE_TOKEN

    folder = apple_form(root / "build" / "tiny-llama" / "mac", tmp_path / "Tiny-Llama-4bit", "4bit")
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("zoo-org/Tiny-Llama")
    api.create_commit("zoo-org/Tiny-Llama", [CommitOperationAdd(p.name, p.read_bytes())
                                             for p in (folder / "tokenizer").iterdir()], commit_message="tokenizer")
    (folder / "tokenizer" / "tokenizer.json").unlink()
    home = {"HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": ""}
    args = ("run", str(folder), "--prompt", "Where do giraffes live?", "--greedy", "--max-tokens", "4", "--json")
    ran = run_zoo(*args, root=root, env={**home, "HF_ENDPOINT": hub.url})
    assert ran.returncode == 0, ran.stderr
    ours = run_zoo(*args[:1], str(root / "build" / "tiny-llama" / "mac"), *args[2:], root=root)
    assert json.loads(ran.stdout) == json.loads(ours.stdout)
    verified = json.loads(run_zoo("verify", str(folder), "--json", root=root).stdout)
    assert verified["ok"] and any("downloads zoo-org/Tiny-Llama's tokenizer from the Hub" in w
                                  for w in verified["warnings"]), verified
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    offline = run_zoo(*args, root=root, env={"HF_HOME": str(tmp_path / "empty-home"), "HF_ENDPOINT": closed})
    assert offline.returncode == 9 and "language.tokenizer 'zoo-org/Tiny-Llama' cannot be fetched" in offline.stderr


CONVERSATION = [
    {"role": "system", "content": "You answer in one word."},
    {"role": "user", "content": "Where do giraffes live?"},
    {"role": "assistant", "content": "Africa."},
    {"role": "user", "content": "And penguins?"},
]


@pytest.mark.slow
def test_run_takes_a_conversation_from_a_json_file(root: Path, tmp_path: Path):
    from tokenizers import Tokenizer

    from zootool.bundle.tokenizer_rules import render_chat
    from zootool.gate.generate import model_folder

    bundle = root / "build" / "tiny-llama" / "mac"
    (tmp_path / "chat.json").write_text(json.dumps({"messages": CONVERSATION}))
    result = run_zoo("run", str(bundle), "--messages", str(tmp_path / "chat.json"), "--greedy", "--max-tokens", "3",
                     "--json", root=root)
    assert result.returncode == 0, result.stderr
    folder = model_folder(bundle)
    config = json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())
    text = render_chat((folder / "tokenizer" / "chat_template.jinja").read_text(), config, CONVERSATION,
                       generation_prompt=True)
    assert "You answer in one word." in text and "Africa." in text  # every turn reaches the model
    ids = Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert json.loads(result.stdout)["prompt_tokens"] == len(ids)


@pytest.mark.parametrize(("content", "message"), [
    ([{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}], "messages[1].role: Input should be"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "the last turn must be the user's"),
    ({"turns": []}, "messages: Input should be a valid list"),
    ([{"role": "user"}], "messages[0].content: Field required"),
])  # fmt: skip
def test_a_bad_conversation_file_says_which_turn(tmp_path: Path, content, message):
    from conftest import invoke_zoo

    (tmp_path / "chat.json").write_text(json.dumps(content))
    result = invoke_zoo("run", str(tmp_path), "--messages", str(tmp_path / "chat.json"))
    assert result.exit_code == 2 and message in result.stderr and f"{tmp_path / 'chat.json'}" in result.stderr, \
        result.stderr
    both = invoke_zoo("run", str(tmp_path), "--prompt", "hi", "--messages", str(tmp_path / "chat.json"))
    assert both.exit_code == 2 and "--prompt TEXT or --messages FILE" in both.stderr
