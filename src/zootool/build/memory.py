"""Giving freed heap memory back to the operating system between the big steps of an export."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys


def return_freed_memory() -> None:
    """Collect garbage, then ask glibc to unmap free heap pages (Linux; elsewhere a no-op).

    Tensors under glibc's mmap threshold (up to 32 MiB once it adapts) come from the heap;
    freed, they stay with the process unless trimmed, and a layer-by-layer export would
    keep every layer's fp16 copy that way.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():  # type: ignore[no-untyped-def]
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
