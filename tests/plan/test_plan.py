"""The resolver: override order, provenance, hash stability, budget verdicts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from zootool.arch.scaffolds import DENSE
from zootool.errors import BudgetExceededError
from zootool.plan.fits import require_fits
from zootool.plan.resolve import cascade, resolve
from zootool.config.recipe import GateSettings, Settings
from zootool.config.registry import get
from zootool.config.zoo_data import Zoo

REPO = Path(__file__).resolve().parents[2]


def plan_for(root: Path, model: str, target: str, **cli):
    zoo = Zoo(root)
    recipe, path = get(zoo, model)
    return resolve(recipe, target, zoo, recipe_file=str(path), overrides=Settings(**cli) if cli else None)


def test_cascade_lowest_first_and_nested_merge():
    levels = [
        (Settings(quant="fp16", kernel="a", gate=GateSettings(margin=0.1, positions=41)), "zoo.toml", "defaults"),
        (Settings(quant="sym8", gate=GateSettings(max_introduced_flips=2)), "r.toml", "defaults"),
        (Settings(gate=GateSettings(margin=0.2)), "r.toml", "targets.mac"),
        (Settings(quant="int4km"), "command line", "command line"),
    ]
    values, origins = cascade(levels)
    assert values == {"quant": "int4km", "kernel": "a", "gate.margin": 0.2, "gate.positions": 41,
                      "gate.max_introduced_flips": 2}
    assert str(origins["quant"]) == "command line: --quant"
    assert str(origins["gate.margin"]) == "r.toml: targets.mac.gate.margin"
    assert str(origins["gate.positions"]) == "zoo.toml: defaults.gate.positions"
    assert str(origins["gate.max_introduced_flips"]) == "r.toml: defaults.gate.max-introduced-flips"


def test_each_level_overrides_the_one_below(zoo_root: Path):
    recipe = zoo_root / "recipes" / "tiny-lfm2-moe.toml"
    text = recipe.read_text()
    # zoo default kernel is gather_mm and zoo default margin 0.1; override step by step.
    text = text.replace("[defaults]\n", "[defaults]\nquant = \"fp16\"\n", 1)
    recipe.write_text(text)
    plan = plan_for(zoo_root, "tiny-lfm2-moe", "mac")
    assert plan.scheme_id == "sym8" and plan.origins["quant"].key == "targets.mac.quant"
    plan = plan_for(zoo_root, "tiny-lfm2-moe", "mac", quant="int4km", kernel="gather_mm")
    assert plan.scheme_id == "int4km" and plan.origins["quant"].file == "command line"
    recipe.write_text(text.replace('quant = "sym8"\n', "", 1).replace('kernel = "gather_qmm"\n', "", 1))
    plan = plan_for(zoo_root, "tiny-lfm2-moe", "mac")
    assert plan.scheme_id == "fp16" and plan.origins["quant"].key == "defaults.quant"
    assert plan.gate_positions == 41 and plan.origins["gate.positions"].file == "zoo/zoo.toml"


def test_plan_hash_is_stable_and_tracks_content():
    first = plan_for(REPO, "lfm2.5-8b-a1b", "mac")
    again = plan_for(REPO, "lfm2.5-8b-a1b", "mac")
    assert first.plan_hash == again.plan_hash
    assert plan_for(REPO, "lfm2.5-8b-a1b", "mac", context_length=2048).plan_hash != first.plan_hash
    with pytest.raises(Exception):
        first.context_length = 3  # frozen


def test_iphone_context_is_clamped_to_platform_limit():
    plan = plan_for(REPO, "lfm2.5-8b-a1b", "iphone")
    assert plan.context_length == 1024
    assert plan.origins["context_length"].key == "platforms.iphone.max-context"


def test_a_platform_that_states_its_context_is_served_it():
    """The zoo-wide default context (zoo.toml) is for a platform that states none: the mac serves its 4096."""
    for model in ("qwen3-0.6b", "smollm2-135m-instruct", "lfm2.5-8b-a1b"):
        plan = plan_for(REPO, model, "mac")
        assert plan.context_length == 4096, model
        assert (plan.origins["context_length"].file, plan.origins["context_length"].key) == (
            "zoo/platforms.toml", "platforms.mac.max-context")
    # A recipe's or the command line's own length still wins below the platform's.
    assert plan_for(REPO, "tiny-llama", "mac").context_length == 128
    assert plan_for(REPO, "qwen3-0.6b", "mac", context_length=1024).context_length == 1024


def test_flagship_mac_fits_and_sym8_on_iphone_is_refused_with_alternatives():
    zoo = Zoo(REPO)
    recipe, _ = get(zoo, "lfm2.5-8b-a1b")
    mac = plan_for(REPO, "lfm2.5-8b-a1b", "mac")
    assert mac.budget.fits
    require_fits(mac, recipe, zoo)
    over = plan_for(REPO, "lfm2.5-8b-a1b", "iphone", quant="sym8")
    assert not over.budget.fits
    with pytest.raises(BudgetExceededError) as caught:
        require_fits(over, recipe, zoo)
    assert "exceeds the iphone budget of 6.00 GB" in caught.value.message
    assert caught.value.hint.startswith("schemes that fit: int4km")
    assert caught.value.exit_code == 3
    # pal4 is a Core ML scheme: `--quant pal4` is refused on a Core AI target, so it is no alternative.
    assert "pal4" not in caught.value.hint


def test_estimate_counts_scales_and_the_tied_head_once():
    plan = plan_for(REPO, "tiny-lfm2-moe", "mac")
    assert "lm-head" not in plan.estimate.groups  # tied: the embedding is the head, stored once
    experts = plan.estimate.groups["experts"]
    # int8 + one fp16 scale per 32 weights = 1 + 2/32 bytes per weight.
    assert experts.bytes == experts.params * 34 // 32
    fp16 = plan_for(REPO, "tiny-lfm2-moe", "mac", quant="fp16", kernel="gather_mm").estimate.groups["experts"]
    assert fp16.bytes == fp16.params * 2


def test_entitlement_flagged_above_two_gib_on_iphone():
    plan = plan_for(REPO, "lfm2.5-8b-a1b", "iphone")
    assert plan.budget.entitlement == "com.apple.developer.kernel.increased-memory-limit"
    assert plan_for(REPO, "tiny-lfm2-moe", "iphone").budget.entitlement is None


def test_backend_follows_the_platform_unless_set():
    plan = plan_for(REPO, "tiny-llama", "iphone-ios18")
    assert plan.backend == "coremltools"
    assert str(plan.origins["backend"]) == "zoo/platforms.toml: platforms.iphone-ios18.backends"
    assert plan_for(REPO, "tiny-llama", "mac").backend == "coreai"


def test_scheme_without_a_mapping_on_the_backend_is_refused():
    from zootool.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        plan_for(REPO, "tiny-llama", "mac", quant="pal4")
    assert caught.value.message == "command line: --quant: scheme 'pal4' has no mapping on backend 'coreai'"
    assert caught.value.hint == "schemes for backend coreai with kernel none: fp16, sym8, int8-all, mix48, int4-all"


@pytest.mark.parametrize(("model", "target", "quant"), [
    ("qwen3-0.6b", "mac", "int4km"), ("qwen3-0.6b", "mac", "pal4"), ("qwen3-0.6b", "mac-macos15", "int4km"),
    ("tiny-lfm2-moe", "mac", "pal4"), ("tiny-lfm2-moe", "mac", "int4km"), ("tiny-lfm2-moe", "iphone", "mix48"),
])  # fmt: skip
def test_a_refused_scheme_hints_only_schemes_that_resolve(model: str, target: str, quant: str):
    """Each check's hint lists only schemes that pass every check: never one that another check refuses."""
    from zootool.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        plan_for(REPO, model, target, quant=quant)
    offered = caught.value.hint.split(": ", 1)[1].split(", ")
    assert offered and quant not in offered, caught.value.hint
    for scheme in offered:
        assert plan_for(REPO, model, target, quant=scheme).scheme_id == scheme


DENSE_TARGETS = ("mac", "iphone", "mac-macos15", "iphone-ios18")


@pytest.mark.parametrize("model", ["tiny-llama", "qwen3-0.6b", "smollm2-135m-instruct"])
def test_dense_recipes_default_to_int8_all_on_every_target(model):
    for target in DENSE_TARGETS:
        plan = plan_for(REPO, model, target)
        assert plan.scheme_id == "int8-all" and plan.kernel_id == "none", target
        assert plan.origins["quant"].key == f"targets.{target}.quant"
        assert plan.gate_max_introduced_flips == 1 and plan.budget.fits


@pytest.mark.parametrize("model", ["tiny-llama", "qwen3-0.6b", "smollm2-135m-instruct"])
def test_dense_recipes_hold_what_zoo_new_writes(model):
    """A dense recipe's kernel, gate and per-target scheme are the dense scaffold (one definition)."""
    recipe = tomllib.loads((REPO / "recipes" / f"{model}.toml").read_text())
    for target, table in DENSE.targets.items():
        assert {key: recipe["targets"][target][key] for key in table} == table, target
    assert {key: recipe["defaults"][key] for key in DENSE.defaults} == DENSE.defaults


def test_dense_schemes_quantize_attention_in_the_qwen3_estimate():
    """Qwen3-0.6B: sym8 keeps its attention (352 MB) and embedding fp16; the dense schemes do not."""
    sym8, int8_all, mix48 = (
        plan_for(REPO, "qwen3-0.6b", "mac", quant=q).estimate for q in ("sym8", "int8-all", "mix48")
    )
    assert sym8.groups["attention"].bytes == 352_321_536 and sym8.groups["attention"].storage == "fp16"
    for estimate in (int8_all, mix48):
        for group in ("attention", "embedding"):  # the tied head is the embedding, stored once
            assert estimate.groups[group].storage == "symmetric-int8/block32", group
            assert estimate.groups[group].bytes == estimate.groups[group].params * 34 // 32
        assert "lm-head" not in estimate.groups
    assert mix48.groups["linear"].storage == "symmetric-int4/block32"
    assert mix48.groups["linear"].bytes == mix48.groups["linear"].params * 18 // 32
    assert (sym8.weight_bytes, int8_all.weight_bytes, mix48.weight_bytes) == (944_373_760, 633_364_480, 501_243_904)
    # A peer's all-int8 Core AI bundle of this model (tied head once, int8 embedding) is 633,970,016 B:
    # the same weights plus its program; with the embedding fp16 it could not be under 779 MB.
    assert 0 < 633_970_016 - int8_all.weight_bytes < 0.002 * 633_970_016
    # Apple's mixed 4/8-bit iOS export (438,221,416 B) quantizes more than the MLP to 4 bits.
    assert mix48.weight_bytes > 438_221_416


def test_dense_schemes_are_for_kernel_none_only():
    from zootool.errors import ConfigError

    with pytest.raises(ConfigError, match="does not support quant scheme 'int8-all'"):
        plan_for(REPO, "tiny-lfm2-moe", "mac", quant="int8-all")
    for scheme in ("int8-all", "mix48"):
        assert plan_for(REPO, "tiny-llama", "mac-macos15", quant=scheme).backend == "coremltools"


# Peak RSS of the Core ML export measured by bench/coreml_export_memory.py (2026-12, int8-all, a random
# checkpoint of the Qwen3-0.6B shape): 9.60 GB while converting; the Core AI model had predicted 3.03 GB.
COREML_QWEN3_EXPORT_PEAK = 9.60e9


def test_core_ml_export_memory_follows_the_core_ml_model():
    coreml = plan_for(REPO, "qwen3-0.6b", "mac-macos15").resources.stages
    assert COREML_QWEN3_EXPORT_PEAK <= coreml["export"].memory_bytes <= 1.1 * COREML_QWEN3_EXPORT_PEAK
    assert set(coreml["export"].phases) == {"load", "trace", "convert_and_compress"}
    assert coreml["gate"].phases["fp16_convert_and_compress"] == coreml["export"].memory_bytes  # its ceiling export
    coreai = plan_for(REPO, "qwen3-0.6b", "mac").resources.stages["export"]
    assert coreai.memory_bytes < coreml["export"].memory_bytes / 2  # Core AI loads, quantizes, converts lean
