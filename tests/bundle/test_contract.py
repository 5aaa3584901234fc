"""The engine contract checked statically: a good bundle passes, each broken rule is refused (exit 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import copy_zoo, rehash_bundle, run_zoo

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from zootool.bundle.contract import contract_findings, contract_problems  # noqa: E402

MODEL = "tiny-lfm2-moe"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_zoo(tmp_path_factory.mktemp("contract") / "zoo")
    result = run_zoo("build", MODEL, "--target", "iphone", "--no-gate", "--json", root=root)
    assert result.returncode == 0, result.stderr
    return root / "build" / MODEL / "iphone"


def model_dir(bundle: Path) -> Path:
    return bundle / json.loads((bundle / "manifest.json").read_text())["model_dir"]


@pytest.fixture
def broken(built: Path, tmp_path: Path) -> Path:
    """A copy of the zoo holding the good bundle, to break one rule in; returns the bundle."""
    root = Path(shutil.copytree(built.parents[2], tmp_path / "zoo", ignore=shutil.ignore_patterns(".zoo-cache")))
    return root / "build" / MODEL / "iphone"


def edit_metadata(bundle: Path, change) -> None:
    path = model_dir(bundle) / "metadata.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    rehash_bundle(bundle)


@pytest.mark.slow
def test_built_bundle_meets_the_contract(built: Path):
    assert contract_problems(model_dir(built)) == []
    assert run_zoo("verify", str(built)).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize(("change", "rule"), [
    (lambda d: d["language"].update(function_map={"main": "main"}), "language.function_map.main"),
    (lambda d: d["language"].update(vocab_size=999), "language.vocab_size: 999, but the logits are 1024 wide"),
    (lambda d: d["assets"].update(chunks=["a.aimodel", "b.aimodel"]), "chunks cannot be chained"),
    (lambda d: d.update(metadata_version="0.1"), "metadata_version"),
    (lambda d: d["language"].update(states={"keyCache": "kv_cache"}), "language.states: names"),
    (lambda d: d["language"]["states"].update(convState="kv_cache"),
     "language.states.convState: says 'kv_cache', but the state is fixed"),
])  # fmt: skip
def test_broken_metadata_is_refused_by_zoo_verify(broken: Path, change, rule: str):
    edit_metadata(broken, change)
    result = run_zoo("verify", str(broken), "--json")
    assert result.returncode == 8
    problems = json.loads(result.stdout)["problems"]
    assert any(rule in p and p.startswith("engine contract:") for p in problems), problems
    assert "Traceback" not in result.stderr


class StateAsInputOutput(torch.nn.Module):
    """The old decode-step signature: a scalar position and the cache passed in and out."""

    def forward(self, input_ids, position, keyCache):  # noqa: N803
        cache = keyCache + position.to(keyCache.dtype)
        logits = torch.zeros(1, 1, 1024, dtype=keyCache.dtype) + cache.sum() + input_ids.sum()
        return logits, cache


class ExtraInput(torch.nn.Module):
    def forward(self, input_ids, position_ids, attention_mask):
        return torch.zeros(1, 1, 1024) + input_ids.sum() + position_ids.sum() + attention_mask.sum()


@pytest.mark.slow
@pytest.mark.parametrize(("module", "example", "outputs", "rule"), [
    (StateAsInputOutput(), {"input_ids": torch.zeros(1, 1, dtype=torch.int32), "position": torch.zeros(1, dtype=torch.int32),
                            "keyCache": torch.zeros(1, 2, 8, 4)}, ["logits", "keyCache_out"],
     "inputs: exactly ['input_ids', 'position_ids'] in this order, got ['input_ids', 'position', 'keyCache']"),
    (ExtraInput(), {"input_ids": torch.zeros(1, 1, dtype=torch.int32), "position_ids": torch.zeros(1, 3, dtype=torch.int32),
                    "attention_mask": torch.zeros(1, 3)}, ["logits"],
     "got ['input_ids', 'position_ids', 'attention_mask']"),
])  # fmt: skip
def test_a_graph_off_the_contract_is_refused(broken: Path, module, example, outputs, rule: str):
    from zootool.backends.coreai.export import export_aimodel

    folder = model_dir(broken)
    asset = next(folder.glob("*.aimodel"))
    shutil.rmtree(asset)
    export_aimodel(module, example, asset, output_names=outputs)
    rehash_bundle(broken)
    problems = contract_problems(folder)
    assert any(rule in p for p in problems), problems
    assert any(p.startswith("states: the function has no keyCache") for p in problems), problems
    result = run_zoo("verify", str(broken))
    assert result.returncode == 8 and rule in result.stderr


class FiveStates(torch.nn.Module):
    """The contract's inputs over two growing KV caches and three fixed states: one more than engines take."""

    def forward(self, input_ids, position_ids, keyCache, valueCache, convStates, recurrentStates, extraState):  # noqa: N803
        return _touch_states(input_ids, position_ids, keyCache, valueCache, convStates, recurrentStates, extraState)


class OneGrowingState(torch.nn.Module):
    """A valueCache of fixed size: one growing state where the engines need two."""

    def forward(self, input_ids, position_ids, keyCache, valueCache, convStates):  # noqa: N803
        return _touch_states(input_ids, position_ids, keyCache, valueCache, convStates)


def _touch_states(input_ids, position_ids, *states):
    """Logits ``[1, q, 1024]`` reading every state, each state written once in place."""
    total = sum(state.sum() for state in states)
    for state in states:
        state.add_(1.0)
    return torch.zeros(1, input_ids.shape[1], 1024, dtype=states[0].dtype) + total + position_ids.sum()


def _state_example(fixed: dict[str, tuple[int, ...]], growing: tuple[str, ...]) -> tuple[dict, dict]:
    """(example inputs, dynamic shapes) of a graph with KV caches ``growing`` on axis 3 and ``fixed`` states."""
    dim = torch.export.Dim
    example = {"input_ids": torch.zeros(1, 1, dtype=torch.int32), "position_ids": torch.zeros(1, 3, dtype=torch.int32),
               "keyCache": torch.zeros(1, 1, 2, 8, 4), "valueCache": torch.zeros(1, 1, 2, 8, 4)}
    example |= {name: torch.zeros(shape) for name, shape in fixed.items()}
    capacity = dim("capacity", min=2, max=64)
    shapes = {name: ({3: capacity} if name in growing else None) for name in example}
    return example, shapes | {"position_ids": {1: dim("context", min=1, max=64)}}


@pytest.mark.slow
@pytest.mark.parametrize(("module", "fixed", "growing", "rule"), [
    (FiveStates(), {"convStates": (1, 1, 6, 3), "recurrentStates": (1, 1, 2, 4, 4), "extraState": (1, 2)},
     ("keyCache", "valueCache"), "states: engines take at most 4 states"),
    (OneGrowingState(), {"convStates": (1, 1, 6, 3)}, ("keyCache",),
     "states: engines need at least 2 growing states (the KV caches); growing: ['keyCache']"),
])  # fmt: skip
def test_a_state_set_off_the_contract_is_refused(broken: Path, module, fixed, growing, rule: str):
    from zootool.backends.coreai.export import export_aimodel

    folder = model_dir(broken)
    asset = next(folder.glob("*.aimodel"))
    shutil.rmtree(asset)
    example, dynamic = _state_example(fixed, growing)
    export_aimodel(module, example, asset, output_names=["logits"], state_names=["keyCache", "valueCache", *fixed],
                   dynamic_shapes=tuple(dynamic[name] for name in example))
    edit_metadata(broken, lambda d: d["language"].update(states=None))
    result = run_zoo("verify", str(broken), "--json")
    assert result.returncode == 8, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert any(rule in p for p in problems), problems
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_tokenizer_rules(broken: Path):
    tokenizer = model_dir(broken) / "tokenizer"
    config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "MysteryTokenizer"}))
    (tokenizer / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    (tokenizer / "generation_config.json").unlink()
    findings = contract_findings(model_dir(broken))
    problems = findings.problems
    assert "tokenizer_config.json: tokenizer_class 'MysteryTokenizer' is not one swift-transformers knows" in problems
    # Optional: Apple's LLM code never reads it (apps sample with their own settings).
    assert not any("generation_config" in p for p in problems)
    assert any(w.startswith("tokenizer/generation_config.json: missing") for w in findings.warnings)
    assert any("does not end with the eos token '<|im_end|>'" in p for p in problems), problems


@pytest.mark.slow
def test_publish_refuses_a_bundle_off_the_contract(broken: Path):
    edit_metadata(broken, lambda d: d["language"].update(function_map={"main": "main"}))
    result = run_zoo("publish", MODEL, "--target", "iphone", "--dry-run", root=broken.parents[2])
    assert result.returncode == 8 and "language.function_map.main" in result.stderr


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_damaged_model_file_is_named_by_its_hash_not_parsed(broken: Path):
    """One flipped byte of main.mlirb: verify names the file whose sha256 changed (exit 8), without parsing it."""
    mlirb = next(model_dir(broken).rglob("main.mlirb"))
    flip_byte(mlirb)
    result = run_zoo("verify", str(broken), "--json")
    assert result.returncode == 8, result.stderr
    assert json.loads(result.stdout)["problems"] == [
        f"{mlirb.relative_to(broken).as_posix()}: sha256 differs from the manifest (changed since the build: damaged or edited)"
    ]
    assert "function" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_contract_check_reports_an_asset_it_cannot_parse(broken: Path):
    flip_byte(next(model_dir(broken).rglob("main.mlirb")))
    [problem] = contract_problems(model_dir(broken))
    assert problem.startswith("assets.main 'Tiny-LFM2-MoE-int4km.aimodel': the asset cannot be parsed ("), problem


@pytest.mark.slow
def test_the_terminal_holds_only_zootools_words(built: Path):
    """The stack's warnings and native lines (coreai-torch's torch-version warning, the runtime's
    'Loading function') go to the command's log; ZOO_DEBUG=1 shows them."""
    root = built.parents[2]
    verified = run_zoo("verify", str(built), root=root)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    ran = run_zoo("run", str(built), "--prompt", "hi", "--max-tokens", "3", "--greedy", root=root)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines() == [ran.stderr.strip()] and ran.stderr.startswith("("), ran.stderr
    log = (root / ".zoo-cache" / "logs" / "zoo-run.log").read_text()
    assert log.strip(), "the stack said nothing: nothing shows this test can fail"
    debug = run_zoo("run", str(built), "--prompt", "hi", "--max-tokens", "3", "--greedy", root=root,
                    env={"ZOO_DEBUG": "1"})
    assert log.strip().splitlines()[-1] in debug.stderr


@pytest.mark.slow
def test_a_damaged_asset_fails_zoo_run_in_zootools_words(broken: Path):
    """The native parser's ``loc(...)`` line stays in the log; the error names the log."""
    flip_byte(next(model_dir(broken).rglob("main.mlirb")))
    result = run_zoo("run", str(model_dir(broken)), "--prompt", "hi", root=broken.parents[2])
    assert result.returncode == 5
    assert "loc(" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and "zoo-run.log" in result.stderr, result.stderr
    assert "program defines no function: it is damaged" in result.stderr
