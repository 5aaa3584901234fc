"""Step-by-step decoding through exported ``.aimodel`` chunk(s) on the Core AI runtime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plan import BuildPlan


def meta_chunks(plan: BuildPlan) -> list[Any]:
    """The plan's decode modules on the meta device: names and state shapes, no weights."""
    import torch

    from .export import family_functions

    build, _ = family_functions(plan.architecture.family)
    with torch.device("meta"):
        return build(plan.architecture.to_hf_config(), plan.context_length, plan.chunks)


class DecodeRunner:
    """Keeps every chunk loaded and carries conv/KV state between single-token steps."""

    def __init__(self, plan: BuildPlan, paths: Sequence[Path]) -> None:
        from .backends.coreai_runtime import AimodelSession

        self.chunks = meta_chunks(plan)
        if len(self.chunks) != len(paths):
            raise ValueError(f"plan has {len(self.chunks)} chunks, got {len(paths)} .aimodel files")
        self.sessions = []
        for path in paths:
            self.sessions.append(AimodelSession(path))

    def __enter__(self) -> "DecodeRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        for session in self.sessions:
            session.close()

    def logits_for(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]`` of feeding ``token_ids`` one by one from empty state."""
        states = [self._zero_states(chunk) for chunk in self.chunks]
        rows = []
        for position, token in enumerate(token_ids):
            x: np.ndarray = np.array([[token]], dtype=np.int32)
            where = np.array([position], dtype=np.int32)
            for index, (chunk, session) in enumerate(zip(self.chunks, self.sessions)):
                x, states[index] = self._step(chunk, session, x, where, states[index])
            rows.append(np.asarray(x, dtype=np.float32).reshape(-1))
        return np.stack(rows)

    @staticmethod
    def _zero_states(chunk: Any) -> list[np.ndarray]:
        return [np.zeros(spec.shape, dtype=np.float16) for spec in chunk.state_specs()]

    @staticmethod
    def _step(chunk, session, x, position, states) -> tuple[np.ndarray, list[np.ndarray]]:
        names = chunk.input_names()
        inputs = {names[0]: x, names[1]: position, **dict(zip(names[2:], states))}
        outputs = session.run(inputs)
        first, *state_names = chunk.output_names()
        return outputs[first], [outputs[name] for name in state_names]
