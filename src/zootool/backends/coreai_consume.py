"""A Core AI converter that frees each torch weight once it has become a Core AI constant.

``TorchConverter`` copies every parameter and buffer of the exported program into the
program it builds. Until the conversion ends both copies are alive: for the flagship, the
stored weights twice (2 x 9.8 GB). Freeing each torch tensor's storage right after its copy
keeps one and a bit. The exported program (and the module it came from) cannot run after
that, so an export asks for it only when it drops the module afterwards.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# Small tensors are not worth the bookkeeping; the big ones are the weights.
RELEASE_MIN_BYTES = 1 << 20


def consuming_converter(mode: Any) -> Any:
    """A ``TorchConverter`` (of ``mode``) that releases tensor storage as it converts."""
    from coreai_torch import TorchConverter

    class ConsumingConverter(TorchConverter):
        def _register_constants(self) -> None:
            super()._register_constants()
            # A storage shared by several placeholders (a tied weight) is released after the last.
            self._pending_uses = Counter(_storage_key(t) for t in self._constant_tensors())

        def _constant_tensors(self) -> list[Any]:
            return [*self._constants_map.values(), *self._parameters_map.values(), *self._buffers_map.values()]

        def _constant_from_tensor(self, tensor: Any) -> Any:
            value = super()._constant_from_tensor(tensor)
            key = _storage_key(tensor)
            self._pending_uses[key] -= 1
            if self._pending_uses[key] <= 0:
                _release(tensor)
            return value

    return ConsumingConverter(mode=mode)


def _payload(tensor: Any) -> Any:
    """The tensor that holds the bytes (a sub-byte wrapper keeps them in ``.elem``)."""
    return getattr(tensor, "elem", tensor)


def _storage_key(tensor: Any) -> int:
    return _payload(tensor).untyped_storage().data_ptr()


def _release(tensor: Any) -> None:
    storage = _payload(tensor).untyped_storage()
    if storage.nbytes() >= RELEASE_MIN_BYTES and storage.resizable():
        storage.resize_(0)
