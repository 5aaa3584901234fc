"""How the gate runs a plan's sides on Linux: chosen from the predicted Core AI runtime time."""

from __future__ import annotations

import pytest
from conftest import REPO, run_zoo

from zootool.config.registry import get
from zootool.config.zoo_data import Zoo
from zootool.errors import ConfigError
from zootool.plan import gate_runtime
from zootool.plan.resolve import BuildPlan, resolve


def plan_for(model: str, target: str) -> BuildPlan:
    zoo = Zoo(REPO)
    recipe, path = get(zoo, model)
    return resolve(recipe, target, zoo, recipe_file=str(path))


@pytest.mark.parametrize(("model", "target", "expected"), [
    ("lfm2.5-8b-a1b", "mac", "streamed"), ("lfm2.5-8b-a1b", "iphone", "streamed"),
    ("smollm2-135m-instruct", "mac", "streamed"), ("qwen3-0.6b", "mac", "streamed"),
    ("tiny-lfm2-moe", "mac", "engine"), ("tiny-llama", "mac", "engine"),
    ("tiny-llama", "mac-macos15", "engine"),  # Core ML compresses after conversion: it cannot stream
])
def test_the_plan_streams_only_where_the_engine_would_take_too_long(model, target, expected):
    assert plan_for(model, target).gate_runtime == expected


def test_the_flagship_engine_side_is_predicted_in_hours_as_measured():
    plan = plan_for("lfm2.5-8b-a1b", "mac")
    arch = plan.architecture
    active = arch.layout().active_params()
    # LFM2.5-8B-A1B: about 1.5B multiply-adds a token (8.47B parameters, 4 of 32 experts routed).
    assert 1.2e9 < active < 1.8e9
    # Measured 89 s a token through the Linux Core AI CPU runtime (bench/coreai_runtime_rate.py).
    seconds = gate_runtime.engine_side_seconds_of(arch, plan.gate_positions)
    assert 60 < seconds / (plan.gate_positions + gate_runtime.PROMPT_TOKENS) < 120


def test_a_dense_engine_side_is_predicted_as_measured_on_smollm2():
    """Issue 25: both engine sides of SmolLM2-135M took 11 min (with the fp16 export); predicted "hours" then."""
    plan = plan_for("smollm2-135m-instruct", "mac")
    seconds = gate_runtime.engine_side_seconds_of(plan.architecture, plan.gate_positions)
    assert 240 < seconds < 420  # a side: 81 tokens at 4.1-4.7 s each, measured
    assert gate_runtime.conversion_check_tokens(plan.architecture) == 8
    assert gate_runtime.conversion_check_tokens(plan_for("lfm2.5-8b-a1b", "mac").architecture) == 1


def test_the_plan_says_how_long_the_engine_would_take():
    from zootool.cli.render import _gate

    assert _gate(plan_for("smollm2-135m-instruct", "mac")).endswith(
        "on Linux streamed in torch, one layer at a time (the Core AI runtime would take about 6 min a side), "
        "with the converted program checked on the first 8 tokens")
    assert "(the Core AI runtime would take about 2.2 h a side)" in _gate(plan_for("lfm2.5-8b-a1b", "mac"))
    assert _gate(plan_for("tiny-llama", "mac")).endswith("through the Core AI runtime (about 8 s a side)")


def test_gate_runtime_does_not_change_the_plan_hash():
    plan = plan_for("lfm2.5-8b-a1b", "mac")
    assert plan.model_copy(update={"gate_runtime": "engine"}).plan_hash == plan.plan_hash
    recorded = plan.to_json()
    del recorded["gate_runtime"]  # a plan.json written before the field existed
    assert BuildPlan.model_validate(recorded).gate_runtime == "engine"


def test_streamed_is_refused_for_a_core_ml_target():
    from zootool.gate.run import checked_runtime

    plan = plan_for("tiny-llama", "mac-macos15")
    with pytest.raises(ConfigError) as caught:
        checked_runtime(plan, "streamed")
    assert "backend 'coremltools'" in caught.value.message and "--runtime engine" in caught.value.hint
    assert checked_runtime(plan, None) == "engine"
    assert checked_runtime(plan_for("lfm2.5-8b-a1b", "mac"), None) == "streamed"


def test_an_unknown_runtime_is_a_usage_error_naming_the_choices():
    result = run_zoo("gate", "tiny-lfm2-moe", "--target", "mac", "--runtime", "gpu")
    assert result.returncode == 2
    assert "--runtime 'gpu' is not one of auto, engine, streamed" in result.stderr
    assert "Traceback" not in result.stderr
