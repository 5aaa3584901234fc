"""Model cards rendered from the plan: front matter per backend and license, body facts."""

from __future__ import annotations

from pathlib import Path

from zootool.bundle.card import render_card
from zootool.plan.resolve import resolve
from zootool.config.registry import get
from zootool.bundle.verify import front_matter
from zootool.config.zoo_data import Zoo

REPO = Path(__file__).resolve().parents[2]
FACTS = {"description": "d", "bundle_dir": "gpu-pipelined/X", "main_asset": "X.aimodel", "actual_size": "1 MB",
         "gate_line": "CLEAN (+0 flips/41 = fp16 ceiling)", "gate_detail": "detail", "zootool_version": "0"}


def card(model: str, target: str) -> tuple[dict, str]:
    zoo = Zoo(REPO)
    recipe, path = get(zoo, model)
    text = render_card(resolve(recipe, target, zoo, recipe_file=str(path)), zoo.cards_dir, FACTS)
    return front_matter(text), text


def test_custom_license_and_quantized_base_model():
    front, text = card("lfm2.5-8b-a1b", "iphone")
    assert front["license"] == "other" and front["license_name"] == "lfm1.0" and front["license_link"] == "LICENSE"
    assert front["base_model"] == "LiquidAI/LFM2.5-8B-A1B" and front["base_model_relation"] == "quantized"
    assert front["library_name"] == "coreai" and front["pipeline_tag"] == "text-generation"
    assert {"coreai", "aimodel", "apple-silicon", "on-device", "int4km", "ios"} <= set(front["tags"])
    assert "com.apple.developer.kernel.increased-memory-limit" in text
    assert "serves prompt + generated tokens up to 1024 (" in text
    assert "CLEAN (+0 flips/41" in text
    # What was published of this model, from its recipe's card-notes.
    assert "**Note.** Use the chat template and sampling: on a bare prompt with greedy decoding the base model " \
           "degenerates into repetition" in text


def test_a_card_says_only_what_is_known_of_its_model():
    """No other model's observations: the flagship's note on repetition is not on a dense model's card."""
    for model, target in (("qwen3-0.6b", "mac"), ("tiny-llama", "mac"), ("tiny-lfm2-moe", "iphone")):
        _, text = card(model, target)
        assert "degenerates" not in text and "**Note.**" not in text, model


def test_a_card_states_the_context_its_graph_serves():
    """The context the plan builds the graph for, not a platform limit the graph may not reach."""
    _, text = card("qwen3-0.6b", "mac")
    assert "context 4096 tokens" in text and "serves prompt + generated tokens up to 4096 (" in text
    _, text = card("tiny-llama", "mac")  # its recipe asks for 128 on a 4096 platform
    assert "serves prompt + generated tokens up to 128 (" in text and "4096" not in text


def test_generated_source_has_no_base_model_and_no_entitlement():
    front, text = card("tiny-lfm2-moe", "mac")
    assert "base_model" not in front and front["license"] == "mit" and "license_name" not in front
    assert "increased-memory-limit" not in text and "llm-benchmark" in text


def test_core_ml_bundle_card():
    front, text = card("tiny-llama", "iphone-ios18")
    assert front["library_name"] == "coreml" and {"coreml", "mlpackage"} <= set(front["tags"])
    assert "aimodel" not in front["tags"] and "llm-benchmark" not in text
    assert "Core ML (`.mlpackage`, iOS 18+)" in text
