"""Every family a zoo maintainer adds with one recipe: `zoo new`, `zoo build`, the gate, `zoo verify`,
and the built bundle's logits through the engine driver against transformers' own fp32 forward.

The fixtures are transformers' own random models (``arch_fixtures``), built as a user builds a
downloaded checkpoint (``--weights``). They build at fp16, so the bundle must reproduce
transformers to fp16 precision, token by token and after a prefill, past every sliding window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_zoo, invoke_zoo

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from arch_fixtures import ARCHITECTURES  # noqa: E402

# The families beyond the two whose tiny recipes build elsewhere (tiny-llama, tiny-lfm2-moe).
NEW = ["lfm2", "qwen3_moe", "mixtral", "qwen2", "gemma3_text", "phi3", "olmo2", "smollm3", "qwen2_moe", "qwen3_next"]
# Not qwen3_5_text: its fixture builds, gates and verifies, but its fp16 logits miss transformers' fp32 ones by
# 0.096 and 0.088 at 2 of 44 positions (torch's fp16 graph: 0.068, 0.079; transformers' own fp16: 0.014),
# from its first delta-net layer, whose output there is ~1e-4; not explained yet (issue 22).
SHA = "0123456789abcdef0123456789abcdef01234567"
PREFILL, STEPS = 8, 44
RECURRENT = {"qwen3_next"}  # families with fixed recurrent states beside the KV caches
# fp16 compute over three random layers (init std 0.1) against fp32: what one bundle may differ by.
MAX_ABS, MEDIAN_ABS = 0.05, 0.03  # per position: its largest logit error
# Positions where a routed model may pick another expert at a near-tie of its router (measured:
# qwen3_moe's converted program, 1 of 44, at a 0.004 logit margin that torch fp16 keeps).
# qwen3_next: its first router's top-2 margin at position 40 is 0.0005; the torch fp16 graph flips
# it too (0.655), and the recurrent state and KV caches carry the flip 3 positions on.
ROUTING_FLIPS = {"qwen3_moe": 2, "mixtral": 2, "qwen2_moe": 2, "qwen3_next": 4}


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_zoo(tmp_path_factory.mktemp("family-builds"))


def built(zoo_root: Path, checkpoint: Path, name: str, target: str = "mac") -> Path:
    """``zoo new`` from the checkpoint's config.json, then ``zoo build --weights`` at fp16; the bundle."""
    model_id = f"fx-{name.replace('_', '-')}"
    if not (zoo_root / "recipes" / f"{model_id}.toml").exists():
        new = invoke_zoo("new", "--config", str(checkpoint / "config.json"), "--license", "apache-2.0",
                         "--hub", f"zoo-fixtures/{model_id}", "--revision", SHA, "--id", model_id, root=zoo_root)
        assert new.exit_code == 0, new.stdout + new.stderr
    build = invoke_zoo("build", model_id, "--target", target, "--weights", str(checkpoint), "--quant", "fp16",
                       "--json", root=zoo_root)
    assert build.exit_code == 0, build.stdout + build.stderr
    summary = json.loads(build.stdout)
    assert summary["gate"].startswith("CLEAN"), summary["gate"]
    # --quant fp16 is a local experiment (issue 26's one publish rule): that is the only refusal.
    assert summary["publish_refusals"] == ["built with command-line overrides (quant): the zoo publishes what the "
                                           "recipe says"], summary["publish_refusals"]
    return zoo_root / "build" / model_id / target


def reference_logits(checkpoint: Path, ids: list[int]) -> np.ndarray:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def engine_logits(model_dir: Path, ids: list[int], prefill: int) -> np.ndarray:
    from zootool.gate.engine import EngineDriver

    with EngineDriver(model_dir) as driver:
        first = [driver.feed(ids[:prefill])] if prefill else []
        return np.concatenate([*first, *(driver.feed([token]) for token in ids[prefill:])])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "target"), [*((name, "mac") for name in NEW), ("gemma3_text", "mac-macos15")])
def test_family_builds_gates_verifies_and_matches_transformers(name, target, zoo_root, arch_checkpoint):
    checkpoint = arch_checkpoint(name)
    bundle = built(zoo_root, checkpoint, name, target)
    verify = invoke_zoo("verify", str(bundle), "--json", root=zoo_root)
    assert verify.exit_code == 0 and json.loads(verify.stdout)["ok"], verify.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    size = manifest["size"]
    if target == "mac":  # Core AI: weights and the program (plan.program); Core ML's program is not modelled
        assert abs(size["estimated_bytes"] - size["model_bytes"]) / size["model_bytes"] < 0.01, size
    ids = torch.randint(3, ARCHITECTURES[name][1].get("vocab_size", 320), (STEPS,),
                        generator=torch.Generator().manual_seed(11)).tolist()
    want = reference_logits(checkpoint, ids)
    for prefill in (0, PREFILL):  # q = 1 throughout, and a prefill of 8 before it
        got = engine_logits(bundle / manifest["model_dir"], ids, prefill)
        error = np.abs(got - want).max(-1)  # per position
        off = [(i, round(float(e), 3)) for i, e in enumerate(error) if e >= MAX_ABS]
        assert len(off) <= ROUTING_FLIPS.get(name, 0) and np.median(error) < MEDIAN_ABS, (prefill, off)
        assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.95
    if name in RECURRENT:
        assert_a_new_sequence_starts_from_zero_states(bundle / manifest["model_dir"], ids)


def assert_a_new_sequence_starts_from_zero_states(model_dir: Path, ids: list[int]) -> None:
    """The engines' reset zeroes the fixed states too: a sequence after another gets its own logits."""
    from zootool.gate.engine import EngineDriver

    with EngineDriver(model_dir) as driver:
        driver.feed(ids[PREFILL:])
        driver.reset()
        after_reset = driver.feed(ids[:PREFILL])
    with EngineDriver(model_dir) as fresh:
        np.testing.assert_array_equal(after_reset, fresh.feed(ids[:PREFILL]))


@pytest.mark.slow
def test_a_mac_bundle_serves_the_platforms_context(zoo_root, arch_checkpoint):
    """The mac states 4096 tokens (zoo/platforms.toml): the bundle's metadata says so, and a prompt past
    the zoo-wide default of 2048 runs and matches transformers at its last positions."""
    checkpoint = arch_checkpoint("olmo2")
    bundle = built(zoo_root, checkpoint, "olmo2")
    model_dir = bundle / json.loads((bundle / "manifest.json").read_text())["model_dir"]
    assert json.loads((model_dir / "metadata.json").read_text())["language"]["max_context_length"] == 4096
    ids = torch.randint(3, 320, (2300,), generator=torch.Generator().manual_seed(13)).tolist()
    want = reference_logits(checkpoint, ids)[-4:]
    got = engine_logits(model_dir, ids, len(ids) - 4)[-4:]
    error = np.abs(got - want).max(-1)
    # fp16 accumulation over 2300 keys: measured 0.03-0.06 per position, twice the short sequence's bound.
    assert (error < 2 * MAX_ABS).all() and (got.argmax(-1) == want.argmax(-1)).all(), error
