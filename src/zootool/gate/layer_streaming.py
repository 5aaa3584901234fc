"""Running a model whose decoder layers live on the meta device: each loaded just for its own call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from ..build.memory import return_freed_memory
from .progress import step


@contextmanager
def loaded_while_running(layers: Iterable[nn.Module], load: Callable[[nn.Module], None]) -> Iterator[None]:
    """``load(layer)`` just before each layer runs; right after, the layer goes back to the meta device.

    Each finished layer is a progress step of the gate's current phase.
    """
    layers = list(layers)
    finished = [0]

    def before(module: nn.Module, args: Any) -> None:
        load(module)

    def after(module: nn.Module, args: Any, output: Any) -> None:  # returning None keeps the layer's output
        module.to("meta")
        return_freed_memory()
        finished[0] += 1
        step(finished[0], len(layers), "layer")

    handles = [hook(fn) for layer in layers
               for hook, fn in ((layer.register_forward_pre_hook, before), (layer.register_forward_hook, after))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
