"""``zoo run``: text from a bundle through the engine driver, with the bundle's own tokenizer.

The conversation (one user message, or system, user and assistant turns) goes through the
bundle's chat template (as an app would send it), the driver prefills it and decodes token
by token; decoding stops at the eos token or an additional special token (the engines' stop
tokens) or after ``max_tokens``. Sampling follows ``tokenizer/generation_config.json``
(temperature, top-k, top-p) where the bundle has one, unless greedy. The tokenizer is found
as Apple's LanguageBundle finds it: the embedded ``tokenizer/``, else the Hub id
``language.tokenizer``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..bundle.app_metadata import AppMetadata, embedded_tokenizer
from ..bundle.layout import model_folders
from ..bundle.manifest import MANIFEST, read_manifest
from ..bundle.tokenizer_rules import render_chat
from ..errors import ConfigError


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    generated_tokens: list[int]
    stopped_by: str  # "eos" or "max-tokens"


def model_folder(path: Path) -> Path:
    """A bundle (``manifest.json`` names its model folder), a model folder itself, or a Hub layout of one."""
    if (path / MANIFEST).is_file():
        return path / (read_manifest(path).model_dir or "")
    found = model_folders(path)
    if len(found) == 1:
        return found[0]
    if found:
        raise ConfigError(f"{path}: holds {len(found)} model folders ({', '.join(f.name for f in found)})",
                          "pass the one to run")
    raise ConfigError(f"{path}: neither a bundle (manifest.json) nor a model folder (metadata.json)",
                      "pass build/<model>/<target> or its gpu-pipelined/<name> folder")


def tokenizer_folder(model_dir: Path, metadata: AppMetadata) -> Path:
    """Where the loader takes the tokenizer from: the embedded folder, else a download of the Hub id."""
    from ..fetch.tokenizer import hub_tokenizer

    return embedded_tokenizer(model_dir, metadata) or hub_tokenizer(metadata.language.tokenizer)


def generate(bundle: Path, turns: list[dict[str, str]], max_tokens: int, greedy: bool, seed: int = 0) -> Generation:
    """The model's next assistant turn after ``turns`` (``gate.conversation``)."""
    from tokenizers import Tokenizer

    from .engine import EngineDriver

    folder = model_folder(bundle)
    with EngineDriver(folder) as driver:
        tok_dir = tokenizer_folder(folder, driver.metadata)
        tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        config, sampling = _json(tok_dir / "tokenizer_config.json"), _json(tok_dir / "generation_config.json")
        ids = tokenizer.encode(_chat_text(tok_dir, config, turns), add_special_tokens=False).ids
        stops = _stop_ids(tokenizer, config, sampling)
        rng = np.random.default_rng(seed)
        logits, out = driver.feed(ids)[-1], []
        while len(out) < max_tokens and len(ids) + len(out) < driver.metadata.language.max_context_length:
            token = int(np.argmax(logits)) if greedy else _sample(logits, sampling, rng)
            if token in stops:
                return Generation(text=tokenizer.decode(out), prompt_tokens=len(ids), generated_tokens=out, stopped_by="eos")
            out.append(token)
            logits = driver.feed([token])[-1]
    return Generation(text=tokenizer.decode(out), prompt_tokens=len(ids), generated_tokens=out, stopped_by="max-tokens")


def _chat_text(tok_dir: Path, config: dict[str, Any], turns: list[dict[str, str]]) -> str:
    jinja = tok_dir / "chat_template.jinja"
    template = jinja.read_text() if jinja.is_file() else config.get("chat_template")
    if not template:
        return "\n".join(turn["content"] for turn in turns)
    return render_chat(template, config, turns, generation_prompt=True)


def _stop_ids(tokenizer: Any, config: dict[str, Any], sampling: dict[str, Any]) -> set[int]:
    eos = sampling.get("eos_token_id")
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for token in [config.get("eos_token"), *config.get("additional_special_tokens", [])]:
        text = token.get("content") if isinstance(token, dict) else token
        if text and tokenizer.token_to_id(text) is not None:
            ids.add(tokenizer.token_to_id(text))
    return ids


def _sample(logits: np.ndarray, sampling: dict[str, Any], rng: np.random.Generator) -> int:
    scaled = logits.astype(np.float64) / max(float(sampling.get("temperature") or 1.0), 1e-5)
    top_k = int(sampling.get("top_k") or 0)
    if 0 < top_k < scaled.size:
        scaled[scaled < np.sort(scaled)[-top_k]] = -np.inf
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    top_p = float(sampling.get("top_p") or 1.0)
    if top_p < 1.0:
        order = np.argsort(-probs)
        keep = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
        probs = np.where(np.isin(np.arange(probs.size), keep), probs, 0.0)
        probs /= probs.sum()
    return int(rng.choice(probs.size, p=probs))


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
