"""A bundle's ``tokenizer/`` folder as swift-transformers' ``AutoTokenizer.from(modelFolder:)`` loads it.

Problems stop it loading or generating (``tokenizer.json`` does not parse, an unknown
``tokenizer_class``, a chat template that never emits the eos token); warnings do not
(no ``generation_config.json``: Apple's LLM code never reads it, apps bring their own sampling).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# swift-transformers' TokenizerModel.knownTokenizers (a "Fast" suffix is dropped before the look-up).
KNOWN_TOKENIZER_CLASSES = frozenset({
    "BertTokenizer", "CodeGenTokenizer", "CodeLlamaTokenizer", "CohereTokenizer", "DistilbertTokenizer",
    "DistilBertTokenizer", "FalconTokenizer", "GemmaTokenizer", "GPT2Tokenizer", "LlamaTokenizer",
    "PreTrainedTokenizer", "Qwen2Tokenizer", "RobertaTokenizer", "T5Tokenizer", "TokenizersBackend",
    "WhisperTokenizer", "XLMRobertaTokenizer",
})  # fmt: skip


def tokenizer_warnings(folder: Path) -> list[str]:
    if (folder / "generation_config.json").is_file():
        return []
    return ["tokenizer/generation_config.json: missing; engines sample with the app's settings "
            "(Apple's LLM code does not read it), zoo run with its defaults"]


def tokenizer_problems(folder: Path) -> list[str]:
    """``tokenizer/`` as swift-transformers' ``AutoTokenizer.from(modelFolder:)`` loads it."""
    problems = _tokenizer_json_problems(folder / "tokenizer.json")
    config = _read_json(folder / "tokenizer_config.json")
    if config is None:
        return problems + ["tokenizer/tokenizer_config.json: missing or not JSON"]
    cls = str(config.get("tokenizer_class") or "")
    if cls.replace("Fast", "") not in KNOWN_TOKENIZER_CLASSES:
        problems.append(f"tokenizer_config.json: tokenizer_class {cls or 'is missing'!r} is not one swift-transformers knows")
    return problems + _template_problems(folder, config)


def _tokenizer_json_problems(path: Path) -> list[str]:
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(path))
    except ImportError:
        return []
    except Exception as exc:  # the tokenizers library raises bare Exceptions
        return [f"tokenizer/tokenizer.json: does not load ({type(exc).__name__})"]
    return []


def _template_problems(folder: Path, config: dict[str, Any]) -> list[str]:
    jinja = folder / "chat_template.jinja"
    template = jinja.read_text() if jinja.is_file() else config.get("chat_template")
    if not template:
        return []
    eos = _token_text(config.get("eos_token"))
    try:
        rendered = render_chat(template, config, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}])
    except Exception as exc:  # jinja raises many kinds
        return [f"chat template: does not render ({type(exc).__name__}: {exc})"]
    if eos and eos not in rendered:
        return [f"chat template: an assistant turn does not end with the eos token {eos!r}, so generation never stops"]
    return []


def render_chat(template: str, config: dict[str, Any], messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    """Render a chat template as the Hub's tokenizers do (sandboxed jinja, special tokens as text)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    tokens = {key: _token_text(config.get(key)) for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
    return env.from_string(template).render(messages=messages, add_generation_prompt=generation_prompt, **tokens)


def _token_text(value: Any) -> str:
    return value.get("content", "") if isinstance(value, dict) else str(value or "")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
