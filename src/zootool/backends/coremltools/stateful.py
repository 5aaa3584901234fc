"""A decode graph in the stateful form swift-transformers drives on Core ML (iOS 18 / macOS 15).

swift-transformers' ``LanguageModelWithStatefulKVCache`` (Sources/Models/LanguageModel.swift,
``Keys``) feeds ``inputIds`` ``[1, q]`` (a ranged shape) and ``causalMask`` ``[1, 1, q|1,
past + q]`` (additive, fp16), keeps the KV caches as Core ML states ``keyCache`` /
``valueCache`` from ``MLModel.makeState()``, and reads the ``logits`` output. Core ML states
have a fixed shape: the caches hold ``max_context`` rows. The graph takes ``past`` from
the mask's length, builds its own causal mask and adds the given one on top, so a
broadcast all-zero mask (what swift-transformers passes) still decodes causally.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import NotImplementedFeatureError

INPUT_IDS, CAUSAL_MASK, LOGITS = "inputIds", "causalMask", "logits"
KEY_CACHE, VALUE_CACHE = "keyCache", "valueCache"
INPUT_NAMES = (INPUT_IDS, CAUSAL_MASK)
STATE_NAMES = (KEY_CACHE, VALUE_CACHE)


class StatefulCoreMLGraph(nn.Module):
    """Wraps a family decode graph; its KV caches become registered buffers (Core ML states)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.decoder = graph  # not "graph": a traced module already has a .graph attribute
        self.max_context = graph.max_context
        graph.slice_writes = True  # the only in-place write form coremltools' jit frontend matches
        graph.rotary.use_tables()  # its fp16 pass would compute RoPE angles in fp16 (arch.blocks.rotary)
        for name, tensor in graph.initial_states(graph.max_context, torch.float16).items():
            if name not in STATE_NAMES:
                raise NotImplementedFeatureError(
                    f"the Core ML backend has no path for state {name!r}: swift-transformers' stateful models "
                    "carry only KV caches", "build this family with the Core AI backend",
                )
            self.register_buffer(name, tensor)

    def forward(self, inputIds: Tensor, causalMask: Tensor) -> Tensor:  # noqa: N803 - Core ML feature names
        total = causalMask.shape[-1]
        positions = torch.arange(total, dtype=torch.int32).unsqueeze(0)
        states = {KEY_CACHE: self.keyCache, VALUE_CACHE: self.valueCache}
        return self.decoder.decode(inputIds, positions, states, extra_mask=causalMask)

    def reset(self) -> None:
        for name in STATE_NAMES:
            getattr(self, name).zero_()
