"""The engine contract, checked statically: what a model folder must be for apps' engines to load it.

Core AI folders (``.aimodel``) are checked against what LanguageBundle, EngineFactory and
the coreai-sequential / coreai-pipelined engines read (apple/coreai-models @ 86b363d);
Core ML folders (``.mlpackage``) against swift-transformers' stateful ``LanguageModel``.
Nothing runs: signatures come from the asset summary or the package spec. Each problem
names the rule it breaks; ``zoo verify`` refuses such a bundle (exit 8), so ``zoo publish``
does too, and ``zoo build`` checks its own output before it keeps it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import BackendUnavailableError, VerifyError
from .app_metadata import METADATA_FILE, AppMetadata, metadata_problems

INPUTS = ("input_ids", "position_ids")
KV_STATES = ("keyCache", "valueCache")
COREML_INPUTS, COREML_STATES = ("inputIds", "causalMask"), ("keyCache", "valueCache")
# swift-transformers' TokenizerModel.knownTokenizers (a "Fast" suffix is dropped before the look-up).
KNOWN_TOKENIZER_CLASSES = frozenset({
    "BertTokenizer", "CodeGenTokenizer", "CodeLlamaTokenizer", "CohereTokenizer", "DistilbertTokenizer",
    "DistilBertTokenizer", "FalconTokenizer", "GemmaTokenizer", "GPT2Tokenizer", "LlamaTokenizer",
    "PreTrainedTokenizer", "Qwen2Tokenizer", "RobertaTokenizer", "T5Tokenizer", "TokenizersBackend",
    "WhisperTokenizer", "XLMRobertaTokenizer",
})  # fmt: skip
_DESCRIPTOR = re.compile(r"NDArray \((\w+), (.*)\)")


def contract_problems(model_dir: Path) -> list[str]:
    """Every broken rule of the engine contract, one sentence each (empty: the folder is loadable)."""
    try:
        metadata = AppMetadata.model_validate(json.loads((model_dir / METADATA_FILE).read_text()))
    except (OSError, ValueError) as exc:
        details = metadata_problems(exc) if isinstance(exc, ValidationError) else ["missing or not JSON"]
        return [f"{METADATA_FILE}: {detail}" for detail in details]
    asset = model_dir / metadata.assets.main
    if not asset.is_dir():
        return [f"{METADATA_FILE}: assets.main '{metadata.assets.main}' is not in the folder"]
    problems = coreml_problems(asset) if metadata.assets.format == "mlpackage" else coreai_problems(asset, metadata)
    return problems + tokenizer_problems(model_dir / metadata.language.tokenizer)


def require_contract(model_dir: Path) -> None:
    problems = contract_problems(model_dir)
    if problems:
        raise VerifyError(
            f"{model_dir}: breaks the engine contract: " + "; ".join(problems),
            "rebuild with this zootool (zoo build MODEL --target T --force); see README 'The engine contract'",
        )


def parse_descriptor(text: str) -> tuple[str, list[int]]:
    """``'NDArray (Float16, 2 × 1 × ? × 64)'`` -> ``('Float16', [2, 1, -1, 64])``."""
    match = _DESCRIPTOR.fullmatch(text.strip())
    if not match:
        return text, []
    dims = [-1 if d.strip() == "?" else int(d) for d in match.group(2).split("×")]
    return match.group(1), dims


def coreai_problems(asset: Path, metadata: AppMetadata) -> list[str]:
    from ..backends.coreai.summary import storage_summary

    function = metadata.main_function
    functions, unreadable = _functions(asset)
    if unreadable:
        return [f"assets.main '{asset.name}': the asset cannot be parsed ({unreadable}); rebuild or re-download it"]
    if function not in functions:
        return [f"function_map.main[0]: the asset has no function {function!r} (it has {', '.join(functions)})"]
    summary = storage_summary(asset, function)
    inputs = {name: parse_descriptor(text) for name, text in summary["inputs"].items()}
    outputs = [parse_descriptor(text) for text in summary["outputs"].values()]
    states = {name: parse_descriptor(text) for name, text in summary["states"].items()}
    return (
        _input_problems(inputs) + _logits_problems(outputs, metadata.language.vocab_size)
        + _state_problems(states, metadata.language.states)
    )


def _functions(asset: Path) -> tuple[list[str], str | None]:
    """The asset's functions, or why its program cannot be read (a program with none did not parse)."""
    from ..backends.coreai.summary import asset_functions

    try:
        functions = asset_functions(asset)
    except BackendUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - the native parser raises bare errors on damaged bytecode
        return [], f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return functions, None if functions else "its program defines no function"


def _input_problems(inputs: dict[str, tuple[str, list[int]]]) -> list[str]:
    if tuple(inputs) != INPUTS:
        return [f"inputs: exactly {list(INPUTS)} in this order, got {list(inputs)} (state must be Core AI states)"]
    problems = []
    for name, (dtype, dims) in inputs.items():
        if dtype != "Int32" or len(dims) != 2 or dims[0] != 1:
            problems.append(f"inputs.{name}: must be Int32 [1, n], got {dtype} {dims}")
    if inputs["position_ids"][1][-1:] != [-1]:
        problems.append("inputs.position_ids: its last dimension must be dynamic ([1, past + q])")
    return problems


def _logits_problems(outputs: list[tuple[str, list[int]]], vocab_size: int) -> list[str]:
    if not outputs:
        return ["outputs: the function has no output; the first must be the logits"]
    dtype, dims = outputs[0]
    if dtype != "Float16" or len(dims) != 3:
        return [f"outputs[0]: logits must be Float16 [1, q, vocab], got {dtype} {dims}"]
    if dims[-1] != vocab_size:
        return [f"language.vocab_size: {vocab_size}, but the logits are {dims[-1]} wide"]
    return []


def _state_problems(states: dict[str, tuple[str, list[int]]], declared: dict[str, str] | None) -> list[str]:
    missing = [name for name in KV_STATES if name not in states]
    if missing:
        return [f"states: the function has no {' or '.join(missing)} state (KV caches are Core AI states)"]
    growing = [name for name, (_, dims) in states.items() if -1 in dims]
    problems = [
        f"states.{name}: must be [layers, 1, kv_heads, S, head_dim] with S dynamic (growing), got {states[name][1]}"
        for name in KV_STATES if len(states[name][1]) != 5 or states[name][1][3] != -1
    ]
    if not (len(states) == 2 or (3 <= len(states) <= 4 and len(growing) >= 2)):
        problems.append(f"states: engines take 2 KV states, or 3-4 with at least 2 growing; got {list(states)}")
    if declared is not None and set(declared) != set(states):
        problems.append(f"language.states: names {sorted(declared)}, the function has {sorted(states)}")
    return problems


def coreml_problems(package: Path) -> list[str]:
    from ..backends.coremltools.runtime import signature

    spec = signature(package)
    problems = []
    if tuple(spec["inputs"]) != COREML_INPUTS:
        problems.append(f"inputs: swift-transformers feeds exactly {list(COREML_INPUTS)}, got {list(spec['inputs'])}")
    if set(spec["states"]) != set(COREML_STATES):
        problems.append(f"states: must be Core ML states {list(COREML_STATES)}, got {list(spec['states'])}")
    if "logits" not in spec["outputs"]:
        problems.append(f"outputs: must include 'logits', got {list(spec['outputs'])}")
    return problems


def tokenizer_problems(folder: Path) -> list[str]:
    """``tokenizer/`` as swift-transformers' ``AutoTokenizer.from(modelFolder:)`` loads it."""
    problems = _tokenizer_json_problems(folder / "tokenizer.json")
    config = _read_json(folder / "tokenizer_config.json")
    if config is None:
        return problems + ["tokenizer/tokenizer_config.json: missing or not JSON"]
    cls = str(config.get("tokenizer_class") or "")
    if cls.replace("Fast", "") not in KNOWN_TOKENIZER_CLASSES:
        problems.append(f"tokenizer_config.json: tokenizer_class {cls or 'is missing'!r} is not one swift-transformers knows")
    if not (folder / "generation_config.json").is_file():
        problems.append("tokenizer/generation_config.json: missing")
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
