"""Ask the kernel to read a checkpoint's next decoder layer from disk while this one is at work.

A loader reads tensors through memory maps: each page is read from disk when first touched,
one fault at a time, while the quantizer of the layer before waits for nothing. Telling the
kernel ahead (``posix_fadvise(WILLNEED)`` over the next layer's byte ranges) turns that into
one large read in the background, into the page cache (not the process's resident memory).
The byte ranges come from the safetensors headers: 8 bytes of header length, a JSON header
whose ``data_offsets`` count from the end of the header.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit

Range = tuple[Path, int, int]  # file, first byte, byte count


def layer_ranges(shards: Iterable[Path]) -> dict[int, list[Range]]:
    """The byte ranges of each decoder layer's tensors (``...layers.N....`` names), by layer."""
    layers: dict[int, list[Range]] = {}
    for path in shards:
        for name, (start, length) in _tensor_ranges(path).items():
            match = LAYER.search(name)
            if match:
                layers.setdefault(int(match.group(1)), []).append((path, start, length))
    return layers


def read_ahead(ranges: list[Range]) -> threading.Thread | None:
    """Start reading ``ranges`` into the page cache on a daemon thread; returns at once (the thread)."""
    if not ranges or not hasattr(os, "posix_fadvise"):
        return None
    thread = threading.Thread(target=_advise, args=(ranges,), name="read-ahead", daemon=True)
    thread.start()
    return thread


def _advise(ranges: list[Range]) -> None:
    by_file: dict[Path, list[tuple[int, int]]] = {}
    for path, start, length in ranges:
        by_file.setdefault(path, []).append((start, length))
    for path, spans in by_file.items():
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # a hint only: the read itself reports a missing file
        try:
            for start, length in sorted(spans):
                os.posix_fadvise(descriptor, start, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(descriptor)


def _tensor_ranges(path: Path) -> dict[str, tuple[int, int]]:
    """``name -> (first byte in the file, byte count)``; empty for a header this cannot read."""
    try:
        with path.open("rb") as stream:
            (size,) = struct.unpack("<Q", stream.read(8))
            if size > MAX_HEADER_BYTES:
                return {}
            header = json.loads(stream.read(size))
    except (OSError, ValueError, struct.error):
        return {}  # the loader's own read gives the clear error
    base = 8 + size
    return {name: (base + entry["data_offsets"][0], entry["data_offsets"][1] - entry["data_offsets"][0])
            for name, entry in header.items() if name != "__metadata__" and "data_offsets" in entry}
