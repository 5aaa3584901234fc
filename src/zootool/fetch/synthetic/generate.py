"""A synthetic checkpoint of any size in constant memory: what a Hub snapshot looks like.

``config.json`` and ``generation_config.json`` (written by transformers, which also checks
the config), safetensors weights with exactly the tensor names and shapes of transformers'
``save_pretrained`` (so LFM2-MoE experts are stored one matrix each, as on the Hub, and a
tied head is not stored), streamed slice by slice in the chosen dtype, and the small
trained tokenizer. Same config and seed give byte-identical files.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...arch.base import TensorSpec
from ...build.parallel import in_order, worker_count
from ...errors import ConfigError
from . import safetensors_stream as stream
from .tokenizer import FILES as TOKENIZER_FILES
from .tokenizer import build_tokenizer, save_tokenizer, special_token_ids
from .weights import init_for, slice_tasks

WEIGHT_DTYPES = ("bfloat16", "float32")
# Part of a cached checkpoint's identity: raise it whenever the same config and seed would give other bytes.
GENERATOR_VERSION = 2
DEFAULT_SHARD_SIZE = "5GB"
_OTHER_FILES = {"config.json", "generation_config.json", *TOKENIZER_FILES}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
# LFM2's recommended sampling, so cards and apps read real generation settings from a fixture too.
_GENERATION = {"do_sample": True, "temperature": 0.3, "min_p": 0.15, "repetition_penalty": 1.05}


def generate_checkpoint(
    out_dir: Path, config: dict[str, Any], seed: int, *, dtype: str = "bfloat16",
    max_shard_size: str | int = DEFAULT_SHARD_SIZE,
) -> Path:
    """Write a seeded random checkpoint of ``config`` (``config.json`` keys) to ``out_dir``.

    ``initializer_range`` in ``config`` is the std of the random matrices; special-token
    ids are set to the generated tokenizer's. Shards hold at most ``max_shard_size``
    (``"5GB"``, ``"200KB"``, or bytes). An existing ``out_dir`` is replaced only if it
    holds nothing but such files. Raises :class:`ConfigError` for a config transformers
    or the zoo's architecture families refuse.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ConfigError(f"unsupported checkpoint dtype {dtype!r}", f"use one of {', '.join(WEIGHT_DTYPES)}")
    shard_bytes = parse_size(max_shard_size)
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_all(staging, config, seed, dtype, shard_bytes)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def parse_size(size: str | int) -> int:
    """Bytes from ``"5GB"`` / ``"200KB"`` / ``"1GiB"`` (decimal and binary units, as transformers)."""
    if isinstance(size, int) and size > 0:
        return size
    match = _SIZE.match(str(size))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"invalid shard size {size!r}", "use a positive size such as '5GB', '200KB' or 1000000")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])


def _write_all(directory: Path, config: dict[str, Any], seed: int, dtype: str, shard_bytes: int) -> None:
    tokenizer = build_tokenizer(int(config.get("vocab_size", 0)))
    hf_config = _hf_config({**config, **special_token_ids(tokenizer)}, dtype)
    settings = hf_config.to_dict()
    specs = _architecture(settings, Path("config.json")).checkpoint_tensors()
    _write_weights(directory, specs, settings, seed, dtype, shard_bytes)
    hf_config.save_pretrained(directory)
    _generation_config(settings).save_pretrained(directory)
    save_tokenizer(directory, tokenizer, settings.get("max_position_embeddings", 128_000))


def _write_weights(
    directory: Path, specs: list[TensorSpec], settings: dict[str, Any], seed: int, dtype: str, shard_bytes: int
) -> None:
    std = float(settings.get("initializer_range", 0.02))
    inits = {spec.name: init_for(spec, std, settings.get("pad_token_id")) for spec in specs}
    by_name = {spec.name: spec for spec in specs}
    workers = worker_count()

    def data(shard: Sequence[stream.StoredTensor]) -> Iterator[Any]:
        tasks = (task for t in shard for task in slice_tasks(by_name[t.name], inits[t.name], seed, dtype))
        return in_order(tasks, workers, ahead=2 * workers)

    stored = [stream.StoredTensor(s.name, s.shape, dtype, s.parameter) for s in specs]
    stream.write_checkpoint(directory, stored, data, shard_bytes)


def _hf_config(config: dict[str, Any], dtype: str) -> Any:
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if not model_type:
        raise ConfigError("config has no model_type", "add model_type (e.g. lfm2_moe, llama) to the config")
    try:
        hf_config = AutoConfig.for_model(model_type, **settings)
    except (TypeError, ValueError, KeyError, StrictDataclassError) as exc:
        raise ConfigError(f"invalid {model_type} config: {exc}", "check the config keys against transformers") from exc
    hf_config.dtype = dtype
    hf_config.architectures = settings.get("architectures") or [_causal_lm_class(model_type)]
    return hf_config


def _causal_lm_class(model_type: str) -> str:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(
            f"model_type {model_type!r} has no causal-LM class in transformers", "use a decoder model type"
        )
    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]


def _architecture(settings: dict[str, Any], where: Path) -> Any:
    """The zoo's typed config of a transformers config: the source of the tensor list."""
    from ...arch.registry import architecture_of

    return architecture_of({**settings, "model_type": settings.get("model_type")}, str(where))


def _generation_config(settings: dict[str, Any]) -> Any:
    from transformers import GenerationConfig

    ids = {key: settings[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return GenerationConfig(**ids, **_GENERATION)


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory", "choose another output directory")
    strays = [p.name for p in out_dir.iterdir() if not _is_generated_name(p.name)]
    if strays:
        raise ConfigError(
            f"{out_dir} holds files a generated checkpoint would not write: {', '.join(sorted(strays)[:5])}",
            "choose an empty or new output directory",
        )


def _is_generated_name(name: str) -> bool:
    return name in _OTHER_FILES or (name.startswith("model") and ".safetensors" in name)
