"""The quality gate: fp32 oracle vs the built bundle vs the fp16 ceiling, teacher-forced.

1. Oracle: the upstream checkpoint in fp32 (transformers, CPU) reads a chat-templated
   prompt whose assistant turn is a fixed factual paragraph; at each of the first
   ``positions`` paragraph tokens its top-k logits are kept. (Teacher-forcing a fixed
   paragraph rather than the oracle's own greedy continuation: greedy decoding of a
   base model degenerates into repetition, which would score one token over and over.)
2. Candidate: the bundle's model folder through the engine driver (``engine``), as
   Apple's engines run it: the same tokens teacher-forced (so one flip does not
   cascade), prefilled in the calls the engine would make, KV and conv state carried
   as Core AI states. Where the bundle's kernel cannot execute here (a Metal kernel on
   Linux), a kernel-free twin with the same quantized weights and the same signature is
   exported and run instead, and the transcript says so. ``.mlpackage`` folders run on
   Core ML on macOS; elsewhere their read-back weights run in torch, and the transcript
   says so.
3. Ceiling: the same export without weight quantization (fp16), run the same way.
"""

from __future__ import annotations

import json
import platform as _platform
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..bundle.manifest import tool_versions, write_json_atomic
from ..errors import ConfigError
from ..plan.gate_runtime import GateRuntime
from ..plan.resolve import BuildPlan
from .conversion_check import ConversionCheck
from .margin import OracleRow, count_flips, score_positions, verdict
from .progress import note, phase

GATE_VERSION = 1
TOP_K = 32
PROMPT = "Write one factual paragraph about the red panda."
PARAGRAPH = (
    "The red panda is a small mammal native to the eastern Himalayas and southwestern China. "
    "It lives in temperate forests of bamboo, where it spends most of the day asleep in the trees. "
    "Its diet is mainly bamboo leaves, with fruit, acorns, roots and eggs, and it is most active "
    "at dawn and dusk. Its thick red fur and long ringed tail keep it warm in the cold mountains."
)


class Side(BaseModel):
    """One model's run over the transcript: its top-1 tokens and the scored flips."""

    runtime: str
    tokens: list[int]
    flips: int = 0
    flags: list[bool] = []
    gaps: list[float] = []
    conversion: ConversionCheck | None = None  # a streamed candidate's check of the converted program


class Transcript(BaseModel):
    gate_version: int = GATE_VERSION
    recipe: str
    target: str
    plan_hash: str
    source: dict[str, Any]
    margin: float
    max_introduced_flips: int
    positions: int
    prompt: str
    paragraph: str
    input_ids: list[int]
    forced_tokens: list[int]
    oracle_tokens: list[int]
    oracle_top: list[OracleRow]
    oracle_runtime: str
    fp16: Side | None = None
    candidate: Side | None = None
    verdict: dict[str, Any] | None = None
    line: str = ""
    versions: dict[str, str] = {}

    def summary(self) -> dict[str, Any]:
        v = self.verdict or {}
        return {
            "verdict": "FAIL" if not v.get("passed") else ("CLEAN" if v.get("clean") else "PASS"),
            "line": self.line, "passed": bool(v.get("passed")), "flips": v.get("flips"),
            "fp16_flips": v.get("fp16_flips"), "introduced": v.get("introduced"),
            "positions": self.positions, "candidate_runtime": self.candidate.runtime if self.candidate else None,
            "detail": _detail(self),
        }


def _detail(t: Transcript) -> str:
    runtime = t.candidate.runtime if t.candidate else "not run"
    check = t.candidate.conversion if t.candidate else None
    checked = f" Conversion check ({check.runtime}): {check.line}." if check else ""
    return (
        f"fp32 oracle vs this bundle, teacher-forced over {t.positions} tokens of a fixed factual paragraph "
        f"after a chat-templated prompt; a flip counts when the oracle's margin is >= {t.margin}. Candidate: {t.candidate.flips if t.candidate else '?'} "
        f"flips; fp16 ceiling: {t.fp16.flips if t.fp16 else '?'}. Verdict: {t.line}. Candidate runtime: {runtime}.{checked} "
        "The full transcript is in gate.json."
    )


def oracle_transcript(plan: BuildPlan, checkpoint: Path) -> Transcript:
    """fp32 logits over the teacher-forced paragraph; top-k kept at each scored position.

    The oracle runs transformers' own layers one at a time over the whole sequence
    (``oracle``), so its peak memory is about one fp32 layer, not the whole fp32 model.
    """
    from transformers import AutoTokenizer

    from .oracle import RUNTIME, streaming_top_k

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    prompt_ids, forced = _transcript_ids(tokenizer, plan.gate_positions)
    rows = streaming_top_k(checkpoint, prompt_ids + forced[:-1], TOP_K)[len(prompt_ids) - 1:]
    return Transcript(
        recipe=plan.recipe_id, target=plan.target, plan_hash=plan.plan_hash,
        source=plan.source_fields(),
        margin=plan.gate_margin, max_introduced_flips=plan.gate_max_introduced_flips,
        positions=plan.gate_positions, prompt=PROMPT, paragraph=PARAGRAPH, input_ids=prompt_ids,
        forced_tokens=forced, oracle_tokens=[row.tokens[0] for row in rows], oracle_top=rows,
        oracle_runtime=RUNTIME,
    )


def _transcript_ids(tokenizer: Any, positions: int) -> tuple[list[int], list[int]]:
    """(chat-templated prompt ids, the paragraph's first ``positions`` ids)."""
    messages = [{"role": "user", "content": PROMPT}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        prompt = list(tokenizer(PROMPT)["input_ids"])
    forced = list(tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])[:positions]
    if len(forced) < positions:
        raise ConfigError(
            f"the gate paragraph is only {len(forced)} tokens, fewer than gate.positions = {positions}",
            "lower gate.positions in the recipe",
        )
    return prompt, forced


def candidate_side(model_dir: Path, transcript: Transcript, runtime: str) -> Side:
    """Teacher-force the transcript through a model folder, engine-style, and score the top-1s."""
    from .engine import teacher_forced_logits

    return scored_side(teacher_forced_logits(model_dir, _feed(transcript)), transcript, runtime)


def streamed_side(plan: BuildPlan, checkpoint: Path, transcript: Transcript, *, quantized: bool) -> Side:
    """The transcript through the plan's decode graph in torch, one layer at a time (``streamed``)."""
    from .streamed import runtime_name, streamed_logits

    logits = streamed_logits(plan, checkpoint, _feed(transcript), quantized=quantized)
    return scored_side(logits, transcript, runtime_name(quantized))


def _feed(transcript: Transcript) -> list[int]:
    return transcript.input_ids + transcript.forced_tokens[:-1]


def scored_side(logits: Any, transcript: Transcript, runtime: str) -> Side:
    """Score a side's logits over the whole feed (prompt and forced tokens) against the oracle."""
    logits = logits[len(transcript.input_ids) - 1:]
    tokens = [int(row.argmax()) for row in logits]
    scores = score_positions(transcript.oracle_top, tokens, transcript.margin)
    return Side(
        runtime=runtime, tokens=tokens, flips=count_flips(scores),
        flags=[s.flip for s in scores], gaps=[round(s.oracle_gap, 4) for s in scores],
    )


def run_gate(
    plan: BuildPlan, checkpoint: Path, model_dir: Path, out: Path, ceiling_cache: Path | None = None,
    runtime: GateRuntime | None = None,
) -> Transcript:
    """Oracle, fp16 ceiling and candidate; writes ``gate.json`` at ``out``.

    ``ceiling_cache`` keeps fp16-ceiling sides: they do not depend on the quant scheme, so
    other targets and rebuilds of the same source reuse them instead of exporting again.
    ``runtime`` (default: the plan's ``gate_runtime``) runs the sides through the Core AI
    runtime (``engine``) or as the streamed torch graph (``streamed``); on macOS the
    candidate is always the bundle itself, in its engine.
    """
    runtime = checked_runtime(plan, runtime)
    with phase("fp32 oracle"):
        transcript = oracle_transcript(plan, checkpoint)
    with tempfile.TemporaryDirectory(prefix="zoo-gate-") as tmp:
        if is_own_ceiling(plan):
            with phase("candidate"):  # an fp16 bundle without a custom kernel is the ceiling's very export
                transcript.candidate = _candidate(plan, checkpoint, model_dir, transcript, Path(tmp) / "twin", runtime)
            transcript.fp16 = transcript.candidate
            return finish(transcript, out)
        with phase("fp16 ceiling"):
            transcript.fp16 = _ceiling(plan, checkpoint, transcript, Path(tmp) / "fp16", ceiling_cache, runtime)
        with phase("candidate"):
            transcript.candidate = _candidate(plan, checkpoint, model_dir, transcript, Path(tmp) / "twin", runtime)
    return finish(transcript, out)


def is_own_ceiling(plan: BuildPlan) -> bool:
    """Whether the bundle is the fp16 ceiling itself: no weight quantized, no kernel that needs a twin."""
    return not plan.scheme.quantize and plan.kernel.runs_on_linux


def checked_runtime(plan: BuildPlan, runtime: GateRuntime | None) -> GateRuntime:
    """The runtime asked for, or the plan's; refused where the backend cannot stream."""
    from ..plan.gate_runtime import streaming_refusal

    chosen = runtime or plan.gate_runtime
    refusal = streaming_refusal(plan.backend) if chosen == "streamed" else None
    if refusal:
        raise ConfigError(f"--runtime streamed: {refusal}", "gate this target with --runtime engine")
    return chosen


def _candidate(
    plan: BuildPlan, checkpoint: Path, model_dir: Path, transcript: Transcript, twin_dir: Path, runtime: GateRuntime,
) -> Side:
    if runtime == "streamed" and _platform.system() != "Darwin":
        return _checked_streamed_candidate(plan, checkpoint, model_dir, transcript, twin_dir)
    runnable, twin = _runnable(plan, checkpoint, model_dir, twin_dir)
    return candidate_side(runnable, transcript, _runtime_name(plan, twin))


def _checked_streamed_candidate(
    plan: BuildPlan, checkpoint: Path, model_dir: Path, transcript: Transcript, twin_dir: Path,
) -> Side:
    """The streamed candidate, and the converted program checked against it on the first tokens."""
    from ..plan.gate_runtime import conversion_check_tokens
    from .conversion_check import check_conversion
    from .streamed import runtime_name, streamed_logits

    logits = streamed_logits(plan, checkpoint, _feed(transcript), quantized=True)
    side = scored_side(logits, transcript, runtime_name(True))
    with phase("conversion check"):
        runnable, twin = _runnable(plan, checkpoint, model_dir, twin_dir)
        tokens = conversion_check_tokens(plan.architecture)
        side.conversion = check_conversion(runnable, _feed(transcript), logits, tokens, _runtime_name(plan, twin))
    return side


def _ceiling(
    plan: BuildPlan, checkpoint: Path, transcript: Transcript, tmp: Path, cache: Path | None, runtime: GateRuntime,
) -> Side:
    path = cache / f"{ceiling_key(plan, checkpoint, transcript, runtime)}.json" if cache else None
    if path is not None and path.is_file():
        try:
            side = Side.model_validate_json(path.read_text())
            note("reused from the cache")
            return side
        except ValueError:
            pass  # a damaged cache entry is recomputed
    if runtime == "streamed":
        side = streamed_side(plan, checkpoint, transcript, quantized=False)
    else:
        side = candidate_side(twin_model_dir(plan, checkpoint, tmp, fp16=True), transcript, _runtime_name(plan, False))
    if path is not None:
        write_json_atomic(path, side.model_dump(mode="json"))
    return side


def ceiling_key(plan: BuildPlan, checkpoint: Path, transcript: Transcript, runtime: GateRuntime = "engine") -> str:
    """What the fp16 ceiling depends on: the source weights, the tokens fed, the graph's shape, the runtime."""
    import hashlib

    from .. import __version__

    weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in checkpoint.glob("*.safetensors"))
    identity = {
        "config": hashlib.sha256((checkpoint / "config.json").read_bytes()).hexdigest(), "weights": weights,
        "source": transcript.source, "feed": transcript.input_ids + transcript.forced_tokens,
        "backend": plan.backend, "query_len": plan.kernel.query_len, "context": plan.context_length,
        "zootool": __version__, "gate": GATE_VERSION, "runtime": runtime,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def twin_model_dir(plan: BuildPlan, checkpoint: Path, out: Path, *, fp16: bool = False) -> Path:
    """A model folder like the bundle's (metadata, tokenizer), exported with the kernel-free GatherMM.

    ``fp16``: without weight quantization (the ceiling). The export runs in a child process
    (``child``), as the build's does: its memory is returned when it ends, and a native
    crash or an out-of-memory kill becomes a typed error instead of ending the gate.
    """
    from ..build.child import ExportRequest, run_export
    from ..bundle.package import package_model_dir

    out.mkdir(parents=True, exist_ok=True)
    note("exporting " + ("the fp16 graph" if fp16 else "the kernel-free twin"))
    request = ExportRequest(plan=plan, checkpoint=checkpoint, out_dir=out, stem="twin", kernel="gather_mm", fp16=fp16)
    model = run_export(request, log=None, scratch=out).model
    package_model_dir(plan, checkpoint, out, model)
    return out


def finish(transcript: Transcript, out: Path) -> Transcript:
    result = verdict(transcript.candidate.flips, transcript.fp16.flips, transcript.positions,
                     transcript.max_introduced_flips)
    transcript.verdict = result.model_dump()
    transcript.line = result.line
    check = transcript.candidate.conversion
    if check is not None and not check.passed:  # the flips were counted on torch, not on the program
        transcript.verdict.update(passed=False, clean=False)
        transcript.line = f"FAIL (conversion check: {check.line}; streamed gate {result.line})"
    transcript.versions = tool_versions()
    write_json_atomic(out, transcript.model_dump(mode="json"))
    return transcript


def _runnable(plan: BuildPlan, checkpoint: Path, model_dir: Path, twin_dir: Path) -> tuple[Path, bool]:
    """The bundle's own model folder, or a kernel-free twin where its kernel cannot run here."""
    if plan.kernel.runs_on_linux or _platform.system() == "Darwin":
        return model_dir, False
    return twin_model_dir(plan, checkpoint, twin_dir), True


def _runtime_name(plan: BuildPlan, twin: bool) -> str:
    from ..backends.registry import backend

    return backend(plan.backend).runtime_name(twin)


def load_transcript(path: Path) -> Transcript:
    """A gate.json to replay; a missing or malformed file is the user's input error, not a crash."""
    from pydantic import ValidationError

    hint = "pass the gate.json of a built or published bundle with --replay"
    try:
        return Transcript.model_validate(json.loads(path.read_text()))
    except OSError as exc:
        raise ConfigError(f"--replay {path}: cannot read it ({exc.strerror or type(exc).__name__})", hint) from None
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError
        what = f"{exc.error_count()} missing or invalid fields" if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"--replay {path}: not a gate transcript ({what})", hint) from None


def replay(
    plan: BuildPlan, checkpoint: Path | None, transcript_path: Path, model_dir: Path, out: Path,
    runtime: GateRuntime | None = None,
) -> Transcript:
    """Re-run only the candidate side against a published transcript.

    ``checkpoint`` is needed only where the bundle's kernel cannot run here (the twin) or
    the candidate is streamed; without one the bundle itself runs in the engine.
    """
    transcript = load_transcript(transcript_path)
    if (transcript.recipe, transcript.target) != (plan.recipe_id, plan.target):
        raise ConfigError(
            f"{transcript_path}: a transcript of {transcript.recipe} --target {transcript.target}, "
            f"but the bundle is {plan.recipe_id} --target {plan.target}",
            "replay the gate.json published with this model and target",
        )
    with tempfile.TemporaryDirectory(prefix="zoo-replay-") as tmp, phase("candidate"):
        if checkpoint is None:
            transcript.candidate = candidate_side(model_dir, transcript, _runtime_name(plan, False))
        else:
            runtime = checked_runtime(plan, runtime)
            transcript.candidate = _candidate(plan, checkpoint, model_dir, transcript, Path(tmp) / "twin", runtime)
    return finish(transcript, out)
