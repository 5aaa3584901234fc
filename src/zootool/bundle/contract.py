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
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..config.recipe import HUB_REPO
from ..errors import BackendUnavailableError, VerifyError
from .app_metadata import METADATA_FILE, AppMetadata, embedded_tokenizer, metadata_problems
from .tokenizer_rules import tokenizer_problems, tokenizer_warnings

INPUTS = ("input_ids", "position_ids")
KV_STATES = ("keyCache", "valueCache")
MAX_STATES = 4  # the KV caches and up to two fixed recurrent states
COREML_INPUTS, COREML_STATES = ("inputIds", "causalMask"), ("keyCache", "valueCache")
_DESCRIPTOR = re.compile(r"NDArray \((\w+), (.*)\)")


@dataclass
class Findings:
    """Broken rules (the bundle does not load) and warnings (it loads; something is worth knowing)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def contract_findings(model_dir: Path) -> Findings:
    """Every broken rule of the engine contract, one sentence each, and the warnings."""
    try:
        metadata = AppMetadata.model_validate(json.loads((model_dir / METADATA_FILE).read_text()))
    except (OSError, ValueError) as exc:
        details = metadata_problems(exc) if isinstance(exc, ValidationError) else ["missing or not JSON"]
        return Findings([f"{METADATA_FILE}: {detail}" for detail in details])
    asset = model_dir / metadata.assets.main
    if not asset.is_dir():
        return Findings([f"{METADATA_FILE}: assets.main '{metadata.assets.main}' is not in the folder"])
    problems = coreml_problems(asset) if metadata.assets.format == "mlpackage" else coreai_problems(asset, metadata)
    tokenizer = tokenizer_findings(model_dir, metadata)
    return Findings(problems + tokenizer.problems, tokenizer.warnings)


def contract_problems(model_dir: Path) -> list[str]:
    """Every broken rule of the engine contract (empty: the folder is loadable)."""
    return contract_findings(model_dir).problems


def tokenizer_findings(model_dir: Path, metadata: AppMetadata) -> Findings:
    """The tokenizer the loader would use: the embedded ``tokenizer/``, else the Hub id ``language.tokenizer``."""
    hub_id = metadata.language.tokenizer
    folder = embedded_tokenizer(model_dir, metadata)
    if folder is None:
        if not HUB_REPO.match(hub_id):
            return Findings([f"language.tokenizer: {hub_id!r} is not a Hub id (namespace/name) and the folder embeds "
                             "no tokenizer/tokenizer.json, so the loader finds no tokenizer"])
        return Findings(warnings=[f"no embedded tokenizer/tokenizer.json: the loader downloads {hub_id}'s tokenizer "
                                  "from the Hub (not checked here)"])
    warnings = [] if HUB_REPO.match(hub_id) else [
        f"language.tokenizer: {hub_id!r} is not a Hub id (namespace/name); the loader reads tokenizer/, and falls "
        "back to that id only where the folder is missing"]
    return Findings(tokenizer_problems(folder), warnings + tokenizer_warnings(folder))


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
    """The engines' states (coreai-models PR #132): the two growing KV caches, then at most two more.

    Recurrent hybrids add fixed ``convStates`` / ``recurrentStates`` (LFM2: ``convState``); the
    engines reset fixed states on a new sequence and grow the growing ones by doubling.
    """
    missing = [name for name in KV_STATES if name not in states]
    if missing:
        return [f"states: the function has no {' or '.join(missing)} state (KV caches are Core AI states)"]
    problems = [
        f"states.{name}: must be [layers, 1, kv_heads, S, head_dim] with S dynamic (growing), got {states[name][1]}"
        for name in KV_STATES if len(states[name][1]) != 5 or states[name][1][3] != -1
    ]
    growing = [name for name, (_, dims) in states.items() if -1 in dims]
    if len(states) > MAX_STATES:
        problems.append(f"states: engines take at most {MAX_STATES} states (keyCache, valueCache and up to two "
                        f"fixed ones such as convStates, recurrentStates); got {len(states)}: {list(states)}")
    if len(growing) < len(KV_STATES):
        problems.append(f"states: engines need at least {len(KV_STATES)} growing states (the KV caches); "
                        f"growing: {growing}")
    return problems + _declared_state_problems(states, declared)


def _declared_state_problems(states: dict[str, tuple[str, list[int]]], declared: dict[str, str] | None) -> list[str]:
    """``language.states`` names each state's kind; a growing state is a cache, a static one fixed."""
    if declared is None:
        return []
    if set(declared) != set(states):
        return [f"language.states: names {sorted(declared)}, the function has {sorted(states)}"]
    return [
        f"language.states.{name}: says {kind!r}, but the state is {'growing' if -1 in states[name][1] else 'fixed'}"
        for name, kind in declared.items() if (kind == "fixed") == (-1 in states[name][1])
    ]


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
