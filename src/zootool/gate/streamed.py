"""The gate's streamed sides: the bundle's decode graph in torch, one decoder layer in memory at a time.

Where the Core AI CPU runtime would take hours per side (``plan.gate_runtime``), the fp16
ceiling and the candidate run here instead. The decode graph is the very module the export
converts, built on the meta device. Its resident units (the embedding, a tied or untied head,
the final norm) are loaded first; each decoder layer is loaded from the checkpoint just
before it runs, quantized by the export's own ``unit_quantizer`` (for the candidate; the
ceiling stays fp16), run over the whole teacher-forced sequence, and put back on the meta
device. The graph computes in fp16 as the converted program does, from empty states with its
own causal mask: one call over every token gives what the engine's calls give, up to the
order of fp16 roundings.

What differs from the bundle, and the transcript names it: it is torch's arithmetic, not the
converted program's; the expert kernel is the kernel-free one (as the Linux twin's); routed
experts are multiplied expert by expert over the rows routed to each (the stock ``GatherMM``
composite would gather a weight copy per routed row: gigabytes at full size).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..arch.decoder import build_decode_graph
from ..arch.safetensors_checkpoint import unit_of, untied_names
from ..arch.weights import load_weights
from ..backends.registry import backend
from ..build.parallel import torch_threads
from ..errors import ConfigError
from ..kernels.gather_qmm import pad_k
from ..plan.resolve import BuildPlan
from .layer_streaming import loaded_while_running

THREADS = 2  # the gate's machines have 2 cores
TWIN_KERNEL = "gather_mm"  # the kernel-free expert matmul, as the Linux twin's


def runtime_name(quantized: bool) -> str:
    """How a streamed side ran, for the transcript."""
    weights = "the bundle's quantized weights (kernel-free experts)" if quantized else "fp16 weights"
    return (f"torch fp16 CPU, the decode graph streamed one layer at a time over the whole sequence "
            f"(zootool.gate.streamed), {weights}; not the converted program")


def streamed_logits(plan: BuildPlan, checkpoint: Path, token_ids: Sequence[int], *, quantized: bool) -> np.ndarray:
    """Logits ``[len(token_ids), vocab]`` (fp32 of the graph's fp16) of the plan's decode graph."""
    ids = [int(token) for token in token_ids]
    if not ids:
        raise ConfigError("the streamed gate needs at least one token", "pass the prompt and forced tokens")
    with torch_threads(THREADS), torch.no_grad():
        model = _StreamedGraph(plan, Path(checkpoint), quantized)
        logits = model.logits(ids)
    return logits.float().numpy()


class _StreamedGraph:
    def __init__(self, plan: BuildPlan, checkpoint: Path, quantized: bool) -> None:
        with torch.device("meta"):
            self.graph = build_decode_graph(plan.architecture, plan.context_length, dtype=torch.float16)
        self.checkpoint = checkpoint
        quantize = backend(plan.backend).unit_quantizer(plan.scheme, TWIN_KERNEL) if quantized else None
        self.on_unit = None if quantize is None else (lambda unit: quantize(self.graph, unit))

    def logits(self, ids: list[int]) -> Tensor:
        resident = {unit_of(name) for name in untied_names(self.graph)} - set(self._layer_units())
        self._load(resident)
        states = self.graph.initial_states(len(ids))
        input_ids = torch.tensor([ids], dtype=torch.int32)
        positions = torch.arange(len(ids), dtype=torch.int32).view(1, -1)
        with self._one_layer_at_a_time():
            logits = self.graph(input_ids, positions, *(states[name] for name in self.graph.state_names()))
        return logits[0]

    def _layer_units(self) -> dict[str, nn.Module]:
        return {f"layers.{key}": layer for key, layer in self.graph.layers.items()}

    def _load(self, units: set[str]) -> None:
        load_weights(self.graph, self.checkpoint, self.on_unit, only=units)
        _eager_expert_matmuls(self.graph)

    def _one_layer_at_a_time(self) -> Any:
        unit_of_layer = {id(layer): unit for unit, layer in self._layer_units().items()}
        return loaded_while_running(self._layer_units().values(), lambda layer: self._load({unit_of_layer[id(layer)]}))


class RoutedRowsMatmul(nn.Module):
    """``out[t, j] = weight[indices[t, j]] @ hidden[t(, j)]``, one matmul per expert over its routed rows.

    The contract of the decode graph's expert matmul (``GatherExpertMatmul``); ``weight``
    is a stacked ``[E, N, K']`` tensor or a quantized experts module, dequantized one routed
    expert at a time (``expert_dense``): the storage op on a whole 4-bit stack holds ~25x the
    stack's fp16 bytes in temporaries (11.5 GB for one flagship ``gate_up_proj``).
    """

    def forward(self, hidden: Tensor, indices: Tensor, weight: Any) -> Tensor:
        tokens, top_k = indices.shape
        rows = hidden if hidden.dim() == 3 else hidden.unsqueeze(1).expand(-1, top_k, -1)
        rows = rows.reshape(tokens * top_k, -1)
        flat = indices.reshape(-1)
        out: Tensor | None = None
        for expert in torch.unique(flat).tolist():
            slab = weight.expert_dense(expert) if isinstance(weight, nn.Module) else weight[expert]  # [N, K']
            picked = torch.nonzero(flat == expert).squeeze(1)
            if out is None:
                out = rows.new_empty(tokens * top_k, slab.shape[0])
            out[picked] = pad_k(rows[picked], slab.shape[-1]) @ slab.T
        return out.view(tokens, top_k, -1)


def _eager_expert_matmuls(graph: nn.Module) -> None:
    """Swap every loaded expert host's matmul for :class:`RoutedRowsMatmul`."""
    for module in graph.modules():
        matmul = getattr(module, "matmul", None)
        if isinstance(matmul, nn.Module) and not isinstance(matmul, RoutedRowsMatmul):
            module.matmul = RoutedRowsMatmul()
