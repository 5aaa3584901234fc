"""Wall time and peak memory of the streamed fp32 oracle (``zootool.gate.oracle``) on one checkpoint.

Figures, no assertions. Peak memory is the process's peak resident set (VmHWM) from the call on,
beside the largest decoder layer's size in fp32: the oracle should need about one layer, not the model.

    python bench/oracle_bench.py CHECKPOINT_DIR [--tokens 80]
    python bench/oracle_bench.py --generate medium DIR      # first writes a 350M-parameter bf16 LFM2-MoE to DIR
    python bench/oracle_bench.py --generate full-layer DIR  # one MoE layer of LFM2.5-8B-A1B's size (434M)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import defaultdict
from pathlib import Path

# The generator holds the model in fp32: both stay under ~2 GB there.
GENERATED = {
    # 2 dense + 6 MoE layers of 16 experts, at half LFM2.5-8B-A1B's width.
    "medium": {
        "vocab_size": 32000, "hidden_size": 1024, "num_hidden_layers": 8, "num_dense_layers": 2,
        "layer_types": ["conv", "conv", "full_attention", "conv", "conv", "full_attention", "conv", "conv"],
        "intermediate_size": 3584, "num_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 896,
        "num_attention_heads": 16, "num_key_value_heads": 4, "conv_L_cache": 3, "tie_word_embeddings": True,
        "max_position_embeddings": 4096,
    },
    # One short-conv MoE layer of LFM2.5-8B-A1B's own size (its largest kind); a smaller vocabulary.
    "full-layer": {
        "vocab_size": 32000, "hidden_size": 2048, "num_hidden_layers": 1, "num_dense_layers": 0,
        "layer_types": ["conv"], "intermediate_size": 7168, "num_experts": 32, "num_experts_per_tok": 4,
        "moe_intermediate_size": 1792, "num_attention_heads": 32, "num_key_value_heads": 8, "conv_L_cache": 3,
        "tie_word_embeddings": True, "max_position_embeddings": 4096,
    },
}  # fmt: skip

# LFM2.5-8B-A1B's largest layer (DESIGN.md): 32 experts x 3 x 1792 x 2048, plus a conv mixer
# (in_proj 3 x 2048^2, out_proj 2048^2) or an attention one (32 q / 8 kv heads of 64: ~10.5M).
FULL_SIZE_LAYER_PARAMS = 32 * 3 * 1792 * 2048 + 4 * 2048 * 2048 + 32 * 2048
GIB = 2**30


def _status(field: str) -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _tensor_sizes(directory: Path) -> dict[str, int]:
    """Parameter count per checkpoint tensor, from the safetensors headers alone."""
    from safetensors import safe_open

    sizes = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                sizes[name] = math.prod(shape)
    return sizes


def _largest_layer(sizes: dict[str, int]) -> int:
    per_layer: dict[str, int] = defaultdict(int)
    for name, count in sizes.items():
        match = re.search(r"\.layers\.(\d+)\.", name)
        if match:
            per_layer[match.group(1)] += count
    return max(per_layer.values())


def _generate(preset: str, directory: Path) -> None:
    from zootool.fetch.checkpoint import generate_tiny_checkpoint

    start = time.perf_counter()
    generate_tiny_checkpoint(directory, GENERATED[preset], seed=0, dtype="bfloat16")
    print(f"generated {directory} in {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--generate", choices=sorted(GENERATED), help="first write this generated checkpoint there")
    parser.add_argument("--tokens", type=int, default=80)
    args = parser.parse_args()
    directory = args.checkpoint
    if args.generate and not (directory / "config.json").is_file():
        _generate(args.generate, directory)

    import torch

    from zootool.gate.oracle import THREADS, streaming_logits

    sizes = _tensor_sizes(directory)
    total, layer = sum(sizes.values()), _largest_layer(sizes)
    vocab = json.loads((directory / "config.json").read_text())["vocab_size"]
    ids = torch.randint(0, vocab, (args.tokens,), generator=torch.Generator().manual_seed(0)).tolist()
    print(f"checkpoint    {directory}")
    print(f"parameters    {total / 1e6:.0f} M (whole model in fp32: {4 * total / GIB:.2f} GiB)")
    print(f"largest layer {layer / 1e6:.1f} M parameters = {4 * layer / GIB:.3f} GiB in fp32")
    print(f"tokens        {args.tokens} (logits {args.tokens} x {vocab}), {THREADS} threads")
    # The first call also imports transformers' model code; the second is what streaming itself costs.
    for call in ("first call", "second call"):
        _return_free_heap()
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
        before, start = _status("VmRSS"), time.perf_counter()
        streaming_logits(directory, ids)
        wall, growth = time.perf_counter() - start, _status("VmHWM") - before
        print(f"{call:13} {wall:.1f} s; RSS {before / GIB:.2f} GiB before, peak {(before + growth) / GIB:.2f} GiB"
              f" (+{growth / GIB:.2f} GiB = {growth / (4 * layer):.1f} x the largest fp32 layer)")  # fmt: skip
    _estimate_full_size(before, growth / (4 * layer))


def _return_free_heap() -> None:
    """glibc keeps freed tensors' pages; without this the second call's baseline would count them as live."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _estimate_full_size(baseline: int, ratio: float) -> None:
    full_layer = 4 * FULL_SIZE_LAYER_PARAMS
    print(f"LFM2.5-8B-A1B estimate: largest layer {full_layer / GIB:.2f} GiB in fp32; at {ratio:.1f} x that over a"
          f" {baseline / GIB:.2f} GiB process, the peak is about {(baseline + ratio * full_layer) / GIB:.1f} GiB"
          " (the whole model in fp32: 31.6 GiB)")  # fmt: skip


if __name__ == "__main__":
    main()
