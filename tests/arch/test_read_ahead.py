"""read_ahead: a decoder layer's byte ranges are exactly its tensors' bytes, and reading ahead puts
those pages (and no others) in the page cache."""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from zootool.arch.read_ahead import layer_ranges
from zootool.arch.safetensors_checkpoint import SafetensorsCheckpoint

ROWS = 4096  # 4096 x 128 bf16: 1 MiB a tensor
# Opening a shard maps it and reads its header: the kernel reads around that fault (read_ahead_kb, often
# 8 MiB). A leading filler tensor larger than that keeps the layers out of the kernel's own read-around.
FILLER_ROWS = 32 * ROWS


def _write(tmp_path: Path) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    names = ["model.embed_tokens.weight", "model.layers.0.mlp.w1.weight", "model.layers.0.operator_norm.weight",
             "model.layers.1.mlp.w1.weight", "model.layers.10.mlp.w1.weight"]
    tensors = {name: torch.randn(ROWS, 128, generator=generator).to(torch.bfloat16) for name in names}
    save_file({n: tensors[n] for n in names[:3]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    filler = {"lm_head.weight": torch.zeros(FILLER_ROWS, 128, dtype=torch.bfloat16)}  # sorts first in the file
    save_file({**filler, **{n: tensors[n] for n in names[3:]}}, str(tmp_path / "model-00002-of-00002.safetensors"))
    return tensors


def test_each_layer_range_holds_exactly_that_layers_tensor_bytes(tmp_path: Path):
    tensors = _write(tmp_path)
    ranges = layer_ranges(sorted(tmp_path.glob("*.safetensors")))
    assert sorted(ranges) == [0, 1, 10]
    for layer, spans in ranges.items():
        stored = sorted(bytes(tensor.view(torch.uint8).flatten().numpy()) for name, tensor in tensors.items()
                        if f".layers.{layer}." in name)
        read = sorted(path.read_bytes()[start:start + length] for path, start, length in spans)
        assert read == stored
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 4)
    assert layer_ranges([tmp_path / "broken.safetensors"]) == {}  # no error here: the read itself says it


def _resident_pages(path: Path) -> list[bool]:
    """Which pages of ``path`` are in the page cache (mincore over a map nothing touches)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    with path.open("rb") as stream:
        mapped = mmap.mmap(stream.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        anchor = ctypes.c_char.from_buffer(mapped)
        pages = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        assert libc.mincore(ctypes.addressof(anchor), size, pages) == 0
        del anchor
        mapped.close()
    return [bool(page & 1) for page in pages]


def _wait_until_resident(path: Path, pages: range, seconds: float = 10.0) -> list[bool]:
    """The file's resident pages once ``pages`` are all in, or when ``seconds`` are up: WILLNEED
    only starts the reads, so the pages arrive after the advising thread is done."""
    deadline = time.monotonic() + seconds
    while True:
        resident = _resident_pages(path)
        if all(resident[page] for page in pages) or time.monotonic() > deadline:
            return resident
        time.sleep(0.05)


def _inner_pages(start: int, length: int) -> range:
    return range(-(-start // mmap.PAGESIZE), (start + length) // mmap.PAGESIZE)


def test_reading_ahead_after_a_layer_caches_the_next_layer_only(tmp_path: Path):
    _write(tmp_path)
    shard = tmp_path / "model-00002-of-00002.safetensors"
    os.sync()
    descriptor = os.open(shard, os.O_RDONLY)
    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(descriptor)
    if any(_resident_pages(shard)):
        pytest.skip("this file system keeps the file in memory (tmpfs?): nothing to read ahead")
    ranges = layer_ranges([shard])
    (_, start, length), = ranges[1]
    (_, far_start, far_length), = ranges[10]
    with SafetensorsCheckpoint(tmp_path) as checkpoint:
        opened = _resident_pages(shard)
        if any(opened[page] for page in _inner_pages(start, far_start + far_length - start)):
            pytest.skip("the kernel read the layers in when the shard was opened: nothing left to read ahead")
        thread = checkpoint.read_ahead_after(("layers.0",))
        thread.join(timeout=30)
        assert checkpoint.read_ahead_after(("layers.0",)) is None  # once per layer
    resident = _wait_until_resident(shard, _inner_pages(start, length))
    assert all(resident[page] for page in _inner_pages(start, length))
    assert not any(resident[page] for page in _inner_pages(far_start, far_length))
