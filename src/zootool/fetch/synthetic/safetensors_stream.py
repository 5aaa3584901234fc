"""Safetensors files written tensor by tensor, in slices: memory stays flat whatever the model size.

The format is an 8-byte little-endian header length, a JSON header giving every tensor's
dtype, shape and byte range (padded with spaces so the data starts 8-byte aligned), then the
raw little-endian bytes. Shards, their names and ``model.safetensors.index.json`` follow
transformers' ``save_pretrained``: one ``model.safetensors`` when everything fits one shard.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any, BinaryIO

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# dtype name -> (safetensors code, bytes per element)
DTYPES = {"float32": ("F32", 4), "float16": ("F16", 2), "bfloat16": ("BF16", 2)}
_ALIGN = 8


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of the file: name, shape and dtype name (a key of ``DTYPES``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    parameter: bool = True  # False for buffers, which the index's total_parameters leaves out

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * DTYPES[self.dtype][1]


# The data of a file's tensors, in their order, as 1-D torch tensors of their dtype, each of
# bounded size; a slice never spans two tensors.
DataSource = Callable[[Sequence[StoredTensor]], Iterator[Any]]


def write_checkpoint(
    directory: Path, tensors: Sequence[StoredTensor], data: DataSource, max_shard_bytes: int
) -> list[str]:
    """Write ``tensors`` into shards of at most ``max_shard_bytes`` (plus the index); the file names."""
    shards = split_into_shards(tensors, max_shard_bytes)
    names = shard_names(len(shards))
    for name, shard in zip(names, shards):
        write_file(directory / name, shard, data(shard))
    if len(shards) > 1:
        _write_index(directory / INDEX_FILE, shards, names)
    return names


def split_into_shards(tensors: Sequence[StoredTensor], max_bytes: int) -> list[list[StoredTensor]]:
    """Greedy in name order, the rule of transformers' sharding: a shard closes before the tensor
    that would overflow it, and a tensor larger than ``max_bytes`` gets a shard of its own."""
    shards: list[list[StoredTensor]] = []
    current: list[StoredTensor] = []
    size = 0
    for tensor in sorted(tensors, key=lambda t: t.name):
        if tensor.nbytes > max_bytes:
            shards.append([tensor])
            continue
        if current and size + tensor.nbytes > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(tensor)
        size += tensor.nbytes
    return shards + [current] if current else shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def write_file(path: Path, tensors: Sequence[StoredTensor], data: Iterator[Any]) -> None:
    """One safetensors file, its bytes streamed from ``data`` in header order."""
    with path.open("wb") as out:
        out.write(encode_header(tensors))
        for tensor in tensors:
            _write_tensor(out, tensor, data)
    if next(data, None) is not None:
        raise ValueError(f"{path.name}: more data than its {len(tensors)} tensors hold")


def encode_header(tensors: Sequence[StoredTensor]) -> bytes:
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        entries[tensor.name] = {
            "dtype": DTYPES[tensor.dtype][0],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-(len(header) + 8) % _ALIGN)
    return struct.pack("<Q", len(header)) + header


def _write_tensor(out: BinaryIO, tensor: StoredTensor, data: Iterator[Any]) -> None:
    import torch

    written = 0
    while written < tensor.nbytes:
        part = next(data, None)
        if part is None:
            raise ValueError(f"{tensor.name}: data ended after {written} of {tensor.nbytes} bytes")
        buffer = part.contiguous().view(torch.uint8).numpy()
        out.write(buffer)
        written += buffer.nbytes
    # A miscounted slice would shift every later tensor: never leave such a file behind.
    if written != tensor.nbytes:
        raise ValueError(f"{tensor.name}: a slice runs {written - tensor.nbytes} bytes into the next tensor")


def _write_index(path: Path, shards: list[list[StoredTensor]], names: list[str]) -> None:
    everything = [tensor for shard in shards for tensor in shard]
    index = {
        "metadata": {
            "total_parameters": sum(prod(t.shape) for t in everything if t.parameter),
            "total_size": sum(t.nbytes for t in everything),
        },
        "weight_map": {t.name: name for name, shard in zip(names, shards) for t in shard},
    }
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
