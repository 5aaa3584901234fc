"""`zoo run`: text from a built bundle through the engine driver, with the bundle's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_zoo, run_zoo

pytest.importorskip("coreai_torch")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = copy_zoo(tmp_path_factory.mktemp("run") / "zoo")
    result = run_zoo("build", "tiny-llama", "--target", "mac", "--no-gate", root=zoo)
    assert result.returncode == 0, result.stderr
    return zoo


@pytest.mark.slow
def test_greedy_run_is_the_drivers_argmax_continuation(root: Path):
    from tokenizers import Tokenizer

    from zootool.bundle.contract import render_chat
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
