"""The gate's streamed sides: the decode graph in torch, one layer at a time, against the whole graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coreai_torch")

from conftest import REPO  # noqa: E402
from lfm2_configs import TINY_LFM2_MOE, TINY_LFM2_MOE_VARIANT  # noqa: E402
from llama_configs import TINY  # noqa: E402

from zootool.arch.decode_graph import decode_tokens  # noqa: E402
from zootool.arch.blocks.moe import GatherExpertMatmul  # noqa: E402
from zootool.arch.registry import architecture_of  # noqa: E402
from zootool.backends.coreai.quant import BlockQuantExperts, PalettizedExperts  # noqa: E402
from zootool.build.export import build_graph  # noqa: E402
from zootool.config.registry import get  # noqa: E402
from zootool.config.zoo_data import Zoo  # noqa: E402
from zootool.fetch.checkpoint import generate_tiny_checkpoint  # noqa: E402
from zootool.gate.streamed import RoutedRowsMatmul, streamed_logits  # noqa: E402
from zootool.plan.resolve import resolve  # noqa: E402

TOKENS = 50
CHECKPOINTS = {"lfm2_moe": TINY_LFM2_MOE, "lfm2_moe_untied": TINY_LFM2_MOE_VARIANT, "llama": TINY["llama"]}
RECIPE = {"lfm2_moe": "tiny-lfm2-moe", "lfm2_moe_untied": "tiny-lfm2-moe", "llama": "tiny-llama"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("streamed")
    return {name: generate_tiny_checkpoint(root / name, config, seed=3) for name, config in CHECKPOINTS.items()}


def plan_for(name: str, scheme_id: str, checkpoint: Path):
    """The tiny recipe's plan, with the architecture of ``checkpoint`` (as a checked build has)."""
    zoo = Zoo(REPO)
    recipe, path = get(zoo, RECIPE[name])
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path))
    arch = architecture_of(json.loads((checkpoint / "config.json").read_text()), str(checkpoint))
    return plan.model_copy(update={"scheme": zoo.schemes[scheme_id], "scheme_id": scheme_id, "architecture": arch})


def ids_for(checkpoint: Path) -> list[int]:
    vocab = json.loads((checkpoint / "config.json").read_text())["vocab_size"]
    return torch.randint(0, vocab, (TOKENS,), generator=torch.Generator().manual_seed(4)).tolist()


def whole_graph_logits(plan, checkpoint: Path, ids: list[int], quantized: bool) -> np.ndarray:
    """The export's own graph, every weight loaded and quantized, fed one token per call."""
    from zootool.backends.registry import backend

    quantize = backend(plan.backend).unit_quantizer(plan.scheme, "gather_mm") if quantized else None
    graph = build_graph(plan, checkpoint, quantize)
    return decode_tokens(graph, ids, step=1).float().numpy()


CASES = [("lfm2_moe", "sym8"), ("lfm2_moe", "int4km"), ("lfm2_moe_untied", "sym8"), ("llama", "sym8"),
         ("llama", "fp16")]
NEW_FAMILIES = ["lfm2", "qwen3_moe", "mixtral", "qwen2", "gemma3_text", "phi3", "olmo2", "smollm3", "qwen2_moe"]


@pytest.mark.parametrize(("name", "scheme_id"), CASES)
@pytest.mark.parametrize("quantized", [True, False])
def test_streamed_logits_are_the_whole_graph_fed_token_by_token(checkpoints, name, scheme_id, quantized):
    checkpoint = checkpoints[name]
    plan = plan_for(name, scheme_id, checkpoint)
    ids = ids_for(checkpoint)
    got = streamed_logits(plan, checkpoint, ids, quantized=quantized)
    want = whole_graph_logits(plan, checkpoint, ids, quantized)
    assert got.shape == want.shape == (TOKENS, json.loads((checkpoint / "config.json").read_text())["vocab_size"])
    assert np.abs(got - want).max() < 0.02  # fp16 roundings in another order
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.96


def test_quantized_and_fp16_sides_differ(checkpoints):
    checkpoint = checkpoints["lfm2_moe"]
    plan = plan_for("lfm2_moe", "int4km", checkpoint)
    ids = ids_for(checkpoint)
    quantized = streamed_logits(plan, checkpoint, ids, quantized=True)
    fp16 = streamed_logits(plan, checkpoint, ids, quantized=False)
    assert np.abs(quantized - fp16).max() > 0.01  # 4-bit experts are not the fp16 weights


class _LayersInMemory:
    """After every module call: which decoder layers of the streamed graph hold real weights."""

    def __init__(self) -> None:
        self.graph: torch.nn.Module | None = None
        self.samples: list[list[str]] = []

    def after(self, module, args, output) -> None:
        if self.graph is None and hasattr(module, "state_specs"):
            self.graph = module
        if self.graph is not None:
            self.samples.append([key for key, layer in self.graph.layers.items()
                                 if any(not t.is_meta for t in layer.state_dict().values())])

    def before(self, module, args) -> None:
        self.after(module, args, None)


def test_at_most_one_layer_is_in_memory_and_every_layer_runs(checkpoints):
    checkpoint = checkpoints["lfm2_moe"]
    plan = plan_for("lfm2_moe", "int4km", checkpoint)
    watch = _LayersInMemory()
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(watch.before),
             torch.nn.modules.module.register_module_forward_hook(watch.after)]
    try:
        streamed_logits(plan, checkpoint, ids_for(checkpoint), quantized=True)
    finally:
        for hook in hooks:
            hook.remove()
    assert watch.samples and all(len(layers) <= 1 for layers in watch.samples)
    assert sorted({layers[0] for layers in watch.samples if layers}, key=int) == list(watch.graph.layers)
    assert all(t.is_meta for t in watch.graph.layers.state_dict().values())


@pytest.mark.parametrize("weight_kind", ["fp16", "sym8", "kmeans"])
@pytest.mark.parametrize("per_route_hidden", [False, True])
def test_routed_rows_matmul_is_the_gathered_matmul(weight_kind, per_route_hidden):
    schemes = Zoo(REPO).schemes
    generator = torch.Generator().manual_seed(0)
    stack = torch.randn(6, 32, 64, generator=generator).half()
    indices = torch.randint(0, 6, (9, 2), generator=generator)
    hidden = torch.randn(9, 2, 64, generator=generator) if per_route_hidden else torch.randn(9, 64, generator=generator)
    hidden = hidden.half()
    weight = {
        "fp16": stack,
        "sym8": BlockQuantExperts(stack, schemes["sym8"].quantize["experts"], use_kernel=False),
        "kmeans": PalettizedExperts(stack, schemes["int4km"].quantize["experts"]),
    }[weight_kind]
    dense = weight if weight_kind == "fp16" else weight.dense()
    if weight_kind != "fp16":
        assert all(torch.equal(weight.expert_dense(e), dense[e]) for e in range(6))
    want = GatherExpertMatmul()(hidden.float(), indices, dense[..., :64].float())
    got = RoutedRowsMatmul()(hidden, indices, weight)
    assert got.shape == (9, 2, 32) and got.dtype == torch.float16
    assert torch.allclose(got.float(), want, atol=0.05, rtol=0.01)


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_every_family_streams_as_its_whole_quantized_graph(name, arch_checkpoint):
    """The streamed candidate of each family: one layer at a time, the export's own quantization."""
    checkpoint = arch_checkpoint(name)
    arch = architecture_of(json.loads((checkpoint / "config.json").read_text()), name)
    moe = arch.layout().routed_experts
    plan = plan_for("lfm2_moe" if moe else "llama", "sym8" if moe else "int8-all", checkpoint)
    ids = ids_for(checkpoint)
    got = streamed_logits(plan, checkpoint, ids, quantized=True)
    want = whole_graph_logits(plan, checkpoint, ids, quantized=True)
    assert np.abs(got - want).max() < 0.02 and (got.argmax(-1) == want.argmax(-1)).mean() >= 0.96
