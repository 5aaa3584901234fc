"""Tiny, real LFM2-MoE checkpoints with seeded random weights, for offline builds and tests.

The output is what a Hub snapshot of the architecture looks like: ``config.json``,
``generation_config.json``, ``model.safetensors`` written by transformers'
``save_pretrained`` (so experts use the Hub's per-expert ``experts.N.w1/w2/w3``
names and the tied head is not stored), and a byte-level BPE tokenizer trained
offline on a few embedded paragraphs. Same config and seed give byte-identical files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .quiet import no_progress_bars

PAD, BOS, EOS_TEXT, IM_START, IM_END = "<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, BOS, EOS_TEXT, IM_START, IM_END)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WEIGHT_DTYPES = ("float32", "bfloat16")
_OUTPUT_NAMES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}

_CORPUS = """\
The keepers open the gates of the small zoo at eight in the morning. Before the first visitors
arrive they walk every path, count the animals, check the water in each enclosure and write
what they saw in a notebook that stays on the desk by the entrance.

Red pandas sleep through most of the day in the high branches of their tree. They wake in the
late afternoon, eat bamboo leaves and fruit, and climb down only when a keeper brings apples.
Visitors often mistake them for foxes, although the two animals are not closely related.

A model that runs on a phone has to fit in its memory and answer quickly. Engineers shrink the
weights from sixteen bits to eight or four, measure how often the answers change, and ship the
smaller file only when the quality stays close to the original. Every number is written down.

Rain fell on Tuesday, so the penguins were the only residents who looked pleased. Children in
yellow coats pressed their faces to the glass while the birds dived, turned and surfaced again,
leaving silver trails of bubbles behind them in the cold, clear water of the pool.

Questions and answers: How many legs does a spider have? Eight. Which planet is closest to the
sun? Mercury. What is twelve times twelve? One hundred and forty-four. Where do giraffes live in
the wild? On the open savannas of Africa, where tall acacia trees give them food and shade.
"""


def generate_tiny_checkpoint(
    out_dir: Path, config: dict[str, Any], seed: int, *, dtype: str = "float32", max_shard_size: str | None = None
) -> Path:
    """Write a seeded random LFM2-MoE checkpoint with a small real tokenizer to ``out_dir``.

    ``config`` holds ``config.json`` keys (transformers ``Lfm2MoeConfig`` names);
    special-token ids are set to the generated tokenizer's. Weights are ``dtype``
    (fp32 by default, for oracle comparisons; ``bfloat16`` like the Hub). Norm
    weights and the expert bias are randomised too, so that every tensor matters.
    ``max_shard_size`` (e.g. ``"200KB"``) writes a sharded checkpoint with an index.
    An existing ``out_dir`` is replaced only if it holds nothing but such files.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ConfigError(f"unsupported checkpoint dtype {dtype!r}", f"use one of {', '.join(WEIGHT_DTYPES)}")
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tokenizer = build_tokenizer(int(config.get("vocab_size", 0)))
        full_config = _full_config(config, tokenizer)
        _save_model(staging, full_config, seed, dtype, max_shard_size)
        _save_tokenizer(staging, tokenizer, full_config)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def build_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` of exactly ``vocab_size`` tokens, trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ConfigError(f"vocab_size {vocab_size} is too small for a byte-level tokenizer", f"use >= {minimum}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    # The corpus cannot yield unlimited merges: reserved tokens fill the rest, as real vocabularies do.
    missing = vocab_size - tokenizer.get_vocab_size()
    tokenizer.add_special_tokens([f"<|reserved_{i}|>" for i in range(missing)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    return tokenizer


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory", "choose another output directory")
    strays = [p.name for p in out_dir.iterdir() if not _is_generated_name(p.name)]
    if strays:
        raise ConfigError(
            f"{out_dir} holds files a tiny checkpoint would not write: {', '.join(sorted(strays)[:5])}",
            "choose an empty or new output directory",
        )


def _is_generated_name(name: str) -> bool:
    return name in _OUTPUT_NAMES or (name.startswith("model") and ".safetensors" in name)


def _full_config(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    return {
        "model_type": "lfm2_moe",
        "architectures": ["Lfm2MoeForCausalLM"],
        **config,
        "pad_token_id": ids[PAD],
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[IM_END],
    }


def _save_model(directory: Path, config: dict[str, Any], seed: int, dtype: str, max_shard_size: str | None) -> None:
    import torch

    model = _random_model(config, seed)
    model.generation_config.update(
        bos_token_id=config["bos_token_id"],
        eos_token_id=config["eos_token_id"],
        pad_token_id=config["pad_token_id"],
        do_sample=True,
        temperature=0.3,
        min_p=0.15,
        repetition_penalty=1.05,
    )
    model.to(getattr(torch, dtype))
    options = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    with no_progress_bars():
        model.save_pretrained(directory, **options)


def _random_model(config: dict[str, Any], seed: int) -> Any:
    import torch
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(config)
    model_type = settings.pop("model_type")
    try:
        hf_config = AutoConfig.for_model(model_type, **settings)
    except (TypeError, ValueError, KeyError, StrictDataclassError) as exc:
        raise ConfigError(f"invalid {model_type} config: {exc}", "check the config keys against transformers") from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(hf_config).eval()
        _randomise_defaults(model)
    return model


def _randomise_defaults(model: Any) -> None:
    """Norms start at one and the expert bias at zero; a test could not tell them apart from missing."""
    import torch

    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith("norm.weight"):
                tensor.copy_(1.0 + 0.1 * torch.randn_like(tensor))
            elif name.endswith("expert_bias"):
                tensor.copy_(0.05 * torch.randn_like(tensor))


def _save_tokenizer(directory: Path, tokenizer: Any, config: dict[str, Any]) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    settings = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": IM_END,
        "pad_token": PAD,
        "model_max_length": config.get("max_position_embeddings", 128_000),
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
