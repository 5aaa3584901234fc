"""The small real tokenizer of a synthetic checkpoint, trained offline, and its files.

A byte-level BPE trained on a few embedded paragraphs, padded with reserved tokens to the
exact vocabulary size. Its files are what swift-transformers' ``AutoTokenizer`` and
transformers both load: ``tokenizer.json``, ``tokenizer_config.json`` (whose
``tokenizer_class`` "PreTrainedTokenizerFast" swift-transformers maps to its BPE tokenizer,
after dropping the "Fast" suffix) and ``chat_template.jinja``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ConfigError

PAD, BOS, EOS_TEXT, IM_START, IM_END = "<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, BOS, EOS_TEXT, IM_START, IM_END)
EOS = IM_END  # every chat turn ends with it, so an engine stops after the assistant's turn
TOKENIZER_CLASS = "PreTrainedTokenizerFast"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")

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


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """``pad_token_id`` / ``bos_token_id`` / ``eos_token_id`` as config.json names them."""
    return {
        "pad_token_id": tokenizer.token_to_id(PAD),
        "bos_token_id": tokenizer.token_to_id(BOS),
        "eos_token_id": tokenizer.token_to_id(EOS),
    }


def save_tokenizer(directory: Path, tokenizer: Any, max_length: int) -> None:
    """``tokenizer.json``, ``tokenizer_config.json`` (with the chat template) and ``chat_template.jinja``."""
    tokenizer.save(str(directory / "tokenizer.json"))
    settings = {
        "tokenizer_class": TOKENIZER_CLASS,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
