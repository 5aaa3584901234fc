"""A Core AI converter that frees each torch weight once it has become a Core AI constant.

``TorchConverter`` copies every parameter and buffer of the exported program into the
program it builds. Until the conversion ends both copies are alive: for the flagship, the
stored weights twice (2 x 9.8 GB). Here, once the converter has taken its own references
to the weights, the exported program's tensors (which are the module's own parameters and
buffers) are emptied, and each weight's last reference is dropped as soon as it has been
copied: one copy and a bit stay alive instead of two. Resizing the storages in place is
not possible: the converter's ``numpy()`` views mark them non-resizable.

The module cannot run after this, so an export asks for it only when it drops the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def consuming_converter(mode: Any) -> Any:
    """A ``TorchConverter`` (of ``mode``) that releases the weights as it converts them."""
    import torch
    from coreai_torch import TorchConverter

    plain = _plain_types()

    class ConsumingConverter(TorchConverter):
        def add_exported_program(self, exported_program: Any, *args: Any, **kwargs: Any) -> Any:
            with _unpacked_freed_once_packed(plain):
                return super().add_exported_program(exported_program, *args, **kwargs)

        def to_coreai(self, *args: Any, **kwargs: Any) -> Any:
            # A module staged with composites (add_pytorch_module) is re-exported and packed here.
            with _unpacked_freed_once_packed(plain):
                return super().to_coreai(*args, **kwargs)

        def _register_constants(self) -> None:
            super()._register_constants()
            for weights in (self._constants_map, self._parameters_map, self._buffers_map):
                for name, tensor in weights.items():
                    # Buffers are taken as the very objects the program holds; the converter
                    # needs its own handle before those are emptied below.
                    if type(tensor) in plain:
                        weights[name] = tensor.detach()
            held = {_pointer(t) for t in self._weight_maps_values()} - {0}
            mine = {id(t) for t in self._weight_maps_values()}
            program = self.exported_program
            for tensor in [*program.state_dict.values(), *program.constants.values()]:
                if isinstance(tensor, torch.Tensor) and id(tensor) not in mine and _pointer(tensor) in held:
                    _empty(tensor)

        def _weight_maps_values(self) -> list[Any]:
            return [*self._constants_map.values(), *self._parameters_map.values(), *self._buffers_map.values()]

        def _handle_placeholder_op(self, node: Any) -> None:
            super()._handle_placeholder_op(node)
            target = node.target if isinstance(node.target, str) else node.name
            converted = [weights.pop(key, None) for weights in (self._constants_map, self._parameters_map,
                                                               self._buffers_map) for key in (target, node.name)]
            _free_packed(self, [tensor for tensor in converted if hasattr(tensor, "elem")])

    return ConsumingConverter(mode=mode)


def _free_packed(converter: Any, converted: list[Any]) -> None:
    """Empty the packed bytes of converted sub-byte tensors that no placeholder still needs.

    The program's state dict holds the converter's packed tensors themselves (not
    aliases, as for plain weights), so dropping the converter's handle is not enough.
    """
    import torch

    needed = {_pointer(t) for t in converter._weight_maps_values() if isinstance(t, torch.Tensor)}
    done = {_pointer(t) for t in converted} - needed - {0}
    program = converter.exported_program
    for tensor in [*converted, *program.state_dict.values(), *program.constants.values()]:
        if hasattr(tensor, "elem") and _pointer(tensor) in done:
            _empty(tensor.elem)


@contextmanager
def _unpacked_freed_once_packed(plain: tuple[type, ...]) -> Iterator[None]:
    """Empty each unpacked index tensor as soon as the converter has packed it.

    The converter repacks 1-byte palette indices and 4-bit codes as sub-byte tensors in the
    program's state dict (``inject_subbyte_tensors``, every tensor before any is converted);
    the unpacked originals stay the module's buffers, twice the packed bytes: 7.5 GB for the
    flagship's int4km experts. Their packing (``from_unpacked``) is wrapped for the duration
    of one ``add_exported_program`` call, as the converter offers no hook there.
    """
    from coreai_torch._compression._intx import IntxTensor, UintxTensor

    originals = {cls: cls.__dict__["from_unpacked"] for cls in (UintxTensor, IntxTensor)}

    def freeing(cls: type) -> Any:
        pack = originals[cls].__get__(None, cls)

        def packed(unpacked: Any, *args: Any, **kwargs: Any) -> Any:
            result = pack(unpacked, *args, **kwargs)
            if type(unpacked) in plain:
                _empty(unpacked)
            return result

        return staticmethod(packed)

    try:
        for cls in originals:
            setattr(cls, "from_unpacked", freeing(cls))
        yield
    finally:
        for cls, original in originals.items():
            setattr(cls, "from_unpacked", original)


def _plain_types() -> tuple[type, ...]:
    import torch

    return (torch.Tensor, torch.nn.Parameter, torch.nn.Buffer)


def _empty(tensor: Any) -> None:
    """Shape kept (the converter checks shapes against it), bytes gone: one element seen
    through zero strides."""
    import torch

    tensor.data = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)


def _pointer(tensor: Any) -> int:
    """Where a tensor's bytes live (a sub-byte wrapper keeps them in ``.elem``)."""
    return getattr(tensor, "elem", tensor).untyped_storage().data_ptr()
