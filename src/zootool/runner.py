"""Step-by-step decoding through exported model chunk(s).

``.aimodel`` chunks run on the Core AI runtime. ``.mlpackage`` chunks run on Core ML
where it exists (macOS); elsewhere the plan's torch decode module runs the weights
read back from the package (see ``backends.coremltools_runtime``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plan import BuildPlan


def meta_chunks(plan: BuildPlan, dtype: Any = None) -> list[Any]:
    """The plan's decode modules on the meta device: names and state shapes, no weights."""
    import torch

    from .export import family_functions

    build, _ = family_functions(plan.architecture.family)
    with torch.device("meta"):
        return build(plan.architecture.to_hf_config(), plan.context_length, plan.chunks, dtype=dtype or torch.float32)


def open_session(plan: BuildPlan, index: int, path: Path) -> Any:
    """A session with ``run(inputs) -> outputs`` and ``close()`` for chunk ``index`` at ``path``."""
    if path.suffix == ".mlpackage":
        import torch

        from .backends.coremltools_runtime import CORE_ML_RUNS_HERE, CoreMLSession, TorchReadbackSession

        if CORE_ML_RUNS_HERE:
            return CoreMLSession(path)
        return TorchReadbackSession(path, meta_chunks(plan, torch.float16)[index])
    from .backends.coreai_runtime import AimodelSession

    return AimodelSession(path)


class DecodeRunner:
    """Keeps every chunk loaded and carries conv/KV state between single-token steps."""

    def __init__(self, plan: BuildPlan, paths: Sequence[Path]) -> None:
        self.chunks = meta_chunks(plan)
        if len(self.chunks) != len(paths):
            raise ValueError(f"plan has {len(self.chunks)} chunks, got {len(paths)} model files")
        self.sessions = []
        for index, path in enumerate(paths):
            self.sessions.append(open_session(plan, index, Path(path)))

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
