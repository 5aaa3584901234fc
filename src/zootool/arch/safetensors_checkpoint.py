"""Lazy, tensor-by-tensor reading of a (possibly sharded) safetensors checkpoint."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import FetchError
from .read_ahead import Range, layer_ranges, read_ahead

_REFETCH = "delete the checkpoint directory and fetch it again"
INDEX_FILE = "model.safetensors.index.json"
EMBEDDING_UNIT = "embed_tokens"


class SafetensorsCheckpoint:
    """Every tensor of the ``*.safetensors`` files in a directory, read on demand (mmap).

    With ``model.safetensors.index.json`` only the shards it names are opened;
    otherwise every ``*.safetensors`` file is. Use as a context manager.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._handles: dict[Path, Any] = {}  # None: unmapped, opened again on the next read
        self._where: dict[str, Path] = {}
        self._layers: dict[int, list[Range]] | None = None  # byte ranges by decoder layer, read when first needed
        self._read_ahead: set[int] = set()
        try:
            for path in self._shard_paths():
                self._handles[path] = _open(path)
            self._where = self._locate_tensors()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SafetensorsCheckpoint:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the file handles (and their memory maps)."""
        for handle in self._handles.values():
            if handle is not None:
                handle.__exit__(None, None, None)
        self._handles.clear()

    def unmap(self) -> None:
        """Drop the memory maps; the next read maps its shard again.

        Pages of a map that a read touched count in the process's resident memory until
        the map goes: a whole-model load would otherwise end with the checkpoint resident.
        """
        for path, handle in self._handles.items():
            if handle is not None:
                handle.__exit__(None, None, None)
                self._handles[path] = None

    def read_ahead_after(self, unit: tuple[str, ...]) -> Any:
        """Start reading the decoder layer after ``unit`` from disk (layer 0 after a top-level module).

        Returns the reading thread, or None where there is nothing (more) to read.
        """
        match = re.fullmatch(r"layers\.(\d+)", unit[0])
        following = int(match.group(1)) + 1 if match else 0
        if following in self._read_ahead:
            return None
        self._read_ahead.add(following)
        if self._layers is None:
            self._layers = layer_ranges(self._handles)
        return read_ahead(self._layers.get(following, []))

    def _handle(self, path: Path) -> Any:
        if self._handles.get(path) is None:
            self._handles[path] = _open(path)
        return self._handles[path]

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def names(self) -> list[str]:
        return sorted(self._where)

    def get(self, name: str) -> Any:
        """The tensor ``name`` as a torch tensor (a copy out of the memory map)."""
        path = self._path_of(name)
        try:
            return self._handle(path).get_tensor(name)
        except Exception as exc:  # safetensors raises its own untyped errors
            raise FetchError(f"{path}: cannot read tensor {name!r}: {exc}", _REFETCH) from exc

    def get_slice(self, name: str) -> Any:
        """``name`` unread: indexing it (``[start:stop]``) reads only those rows out of the memory map."""
        return self._handle(self._path_of(name)).get_slice(name)

    def _path_of(self, name: str) -> Path:
        path = self._where.get(name)
        if path is None:
            raise FetchError(
                f"{self.directory}: checkpoint has no tensor {name!r}",
                f"the checkpoint is incomplete or not of this architecture; {_REFETCH}",
            )
        return path

    def _shard_paths(self) -> list[Path]:
        if not self.directory.is_dir():
            raise FetchError(f"checkpoint directory {self.directory} does not exist", "fetch the checkpoint first")
        index = self.directory / INDEX_FILE
        if index.is_file():
            return [self.directory / name for name in sorted(set(self._index_map(index).values()))]
        paths = sorted(self.directory.glob("*.safetensors"))
        if not paths:
            raise FetchError(f"{self.directory}: no *.safetensors file", _REFETCH)
        return paths

    def _index_map(self, index: Path) -> dict[str, str]:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FetchError(f"{index}: unreadable shard index ({exc})", _REFETCH) from exc
        if not isinstance(weight_map, dict):
            raise FetchError(f"{index}: 'weight_map' is not a mapping", _REFETCH)
        return weight_map

    def _locate_tensors(self) -> dict[str, Path]:
        index = self.directory / INDEX_FILE
        if index.is_file():
            return {name: self.directory / shard for name, shard in self._index_map(index).items()}
        return {name: path for path, handle in self._handles.items() for name in handle.keys()}


def _open(path: Path) -> Any:
    from safetensors import safe_open

    if not path.is_file():
        raise FetchError(f"{path}: shard named in {INDEX_FILE} is missing", _REFETCH)
    try:
        handle = safe_open(str(path), framework="pt")
        handle.__enter__()
    except Exception as exc:  # SafetensorError for truncated or corrupted headers
        raise FetchError(f"{path}: not a readable safetensors file ({exc})", _REFETCH) from exc
    return handle


def assign_checked(chunk: Any, name: str, value: Any, where: str) -> None:
    """Put checkpoint tensor ``value`` at ``name`` of ``chunk`` (meta modules too), shape-checked."""
    from torch import nn

    current = chunk.state_dict(keep_vars=True)[name]
    if tuple(value.shape) != tuple(current.shape):
        raise FetchError(
            f"{where}: tensor for {name} has shape {tuple(value.shape)}, the config implies {tuple(current.shape)}",
            "the checkpoint does not match its config.json; fetch both from the same revision",
        )
    owner_path, _, attr = name.rpartition(".")
    owner = chunk.get_submodule(owner_path)
    value = value.to(current.dtype)
    if attr in owner._parameters:
        setattr(owner, attr, nn.Parameter(value, requires_grad=False))
    else:
        setattr(owner, attr, nn.Buffer(value))


def load_by_unit(
    graph: Any, read: Callable[[str], Any], where: str, on_unit: Callable[[tuple[str, ...]], None] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Fill ``graph`` with ``read(state-dict name)`` for every untied tensor, then tie the head.

    ``on_unit(prefixes)`` runs once a unit is complete: a top-level module
    (``("embedding_norm",)``) or one decoder layer (``("layers.3",)``), in load order. A
    tied head and its embedding are one unit, ``("embed_tokens", "lm_head")``, after the tie.
    An export quantizes each unit there, so the whole model never sits in memory at the
    working precision. ``only`` loads just those units (``unit_of`` names); the rest stay
    as they are (the gate's streamed twin loads one layer at a time).
    """
    tied = graph.tied
    done = on_unit or (lambda unit: None)
    current: str | None = None
    for name in untied_names(graph):
        if only is not None and unit_of(name) not in only:
            continue
        unit = unit_of(name)
        if current is not None and unit != current and not (tied and current == EMBEDDING_UNIT):
            done((current,))
        current = unit
        assign_checked(graph, name, read(name), where)
    if current is not None and not (tied and current == EMBEDDING_UNIT):
        done((current,))
    if only is not None and EMBEDDING_UNIT not in only:
        return
    tie_head(graph)
    if tied:
        done((EMBEDDING_UNIT, "lm_head"))


def unmapping(
    checkpoint: SafetensorsCheckpoint, on_unit: Callable[[tuple[str, ...]], None] | None,
) -> Callable[[tuple[str, ...]], None]:
    """``on_unit`` for :func:`load_by_unit` that first unmaps the checkpoint's shards and starts
    reading the next layer from disk (it arrives while ``on_unit`` quantizes this one)."""

    def after(unit: tuple[str, ...]) -> None:
        checkpoint.unmap()
        checkpoint.read_ahead_after(unit)
        if on_unit is not None:
            on_unit(unit)

    return after


def unit_of(name: str) -> str:
    """``layers.3.mlp.w1.weight`` -> ``layers.3``; ``embed_tokens.weight`` -> ``embed_tokens``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "layers" else parts[0]


def untied_names(graph: Any) -> list[str]:
    """State-dict names to load: a head tied to the embedding is loaded once, as the embedding."""
    names = list(graph.state_dict(keep_vars=True))
    return [n for n in names if not (n == "lm_head.weight" and graph.tied)]


def tie_head(graph: Any) -> None:
    """Make a tied head the embedding's own parameter, so an export stores the matrix once."""
    if graph.tied:
        graph.lm_head.weight = graph.embed_tokens.weight
