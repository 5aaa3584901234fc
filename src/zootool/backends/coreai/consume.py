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

from typing import Any


def consuming_converter(mode: Any) -> Any:
    """A ``TorchConverter`` (of ``mode``) that releases the weights as it converts them."""
    import torch
    from coreai_torch import TorchConverter

    class ConsumingConverter(TorchConverter):
        def _register_constants(self) -> None:
            super()._register_constants()
            for weights in (self._constants_map, self._parameters_map, self._buffers_map):
                for name, tensor in weights.items():
                    # Buffers are taken as the very objects the program holds; the converter
                    # needs its own handle before those are emptied below.
                    if type(tensor) in (torch.Tensor, torch.nn.Parameter):
                        weights[name] = tensor.detach()
            held = {_pointer(t) for t in self._weight_maps_values()} - {0}
            mine = {id(t) for t in self._weight_maps_values()}
            program = self.exported_program
            for tensor in [*program.state_dict.values(), *program.constants.values()]:
                if isinstance(tensor, torch.Tensor) and id(tensor) not in mine and _pointer(tensor) in held:
                    # Shape kept (the converter checks shapes against it), bytes gone: one
                    # element seen through zero strides.
                    tensor.data = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)

        def _weight_maps_values(self) -> list[Any]:
            return [*self._constants_map.values(), *self._parameters_map.values(), *self._buffers_map.values()]

        def _handle_placeholder_op(self, node: Any) -> None:
            super()._handle_placeholder_op(node)
            target = node.target if isinstance(node.target, str) else node.name
            for weights in (self._constants_map, self._parameters_map, self._buffers_map):
                weights.pop(target, None)
                weights.pop(node.name, None)

    return ConsumingConverter(mode=mode)


def _pointer(tensor: Any) -> int:
    """Where a tensor's bytes live (a sub-byte wrapper keeps them in ``.elem``)."""
    return getattr(tensor, "elem", tensor).untyped_storage().data_ptr()
