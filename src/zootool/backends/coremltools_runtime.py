"""Reading a saved ``.mlpackage`` back, and running it: Core ML on macOS, its weights in torch elsewhere.

``MLModel.predict`` exists only on macOS. On Linux a package can still be opened
as a MIL program: its weight constants are read back and dequantized by
coremltools itself (``materialized_val_inference`` of ``constexpr_*`` ops), so the
gate can run the bundle's own stored weights in the torch decode module.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BackendFailedError, BackendUnavailableError
from .coremltools import ALIASES_KEY, WEIGHT_SUFFIX, const_name

COMPRESSED_SUFFIXES = ("_quantized", "_palettized")
CORE_ML_RUNS_HERE = platform.system() == "Darwin"
TORCH_RUNTIME = (
    "torch fp16 on the {machine} CPU with the weights read back from the .mlpackage and dequantized by "
    "coremltools (Core ML's MLModel.predict does not run on {system})"
)


def runtime_name() -> str:
    """How a ``.mlpackage`` is executed on this machine, for transcripts and cards."""
    if CORE_ML_RUNS_HERE:
        return f"Core ML (MLModel.predict, compute units ALL) on macOS {platform.mac_ver()[0]} {platform.machine()}"
    return TORCH_RUNTIME.format(machine=platform.machine(), system=platform.system())


def _model(path: Path, load: bool = False) -> Any:
    try:
        import coremltools as ct
    except ImportError as exc:
        raise BackendUnavailableError(f"coremltools is not importable: {exc}", "pip install 'coremltools>=9'") from exc
    if not (Path(path) / "Manifest.json").is_file():
        raise BackendFailedError(f"{path} is not a Core ML package", "pass the path of a .mlpackage directory")
    try:
        return ct.models.MLModel(str(path), skip_model_load=not load, compute_units=ct.ComputeUnit.ALL)
    except Exception as exc:  # coremltools raises bare Exceptions for unreadable packages
        raise BackendFailedError(f"{path}: cannot open the Core ML package: {exc}", "re-export the model") from exc


def read_program(path: Path) -> Any:
    """The package's MIL program (no model compilation; works on Linux)."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    model = _model(path)
    spec = model.get_spec()
    return milproto_load(spec, spec.specificationVersion, model.weights_dir)


def _weight_ops(path: Path) -> dict[str, Any]:
    """Weight constant name -> the op that produces it (``const`` or ``constexpr_*``)."""
    ops = {}
    for op in read_program(path).functions["main"].operations:
        name = op.name
        for suffix in COMPRESSED_SUFFIXES:
            name = name.removesuffix(suffix)
        if name.endswith(WEIGHT_SUFFIX) and (op.op_type == "const" or op.op_type.startswith("constexpr_")):
            ops[name] = op
    return ops


def read_weights(path: Path) -> dict[str, Any]:
    """Every weight constant as a dense numpy array, compressed ones dequantized by coremltools."""
    weights = {}
    for name, op in _weight_ops(path).items():
        weights[name] = op.outputs[0].val if op.op_type == "const" else op.materialized_val_inference()
    return weights


def storage_summary(path: Path) -> dict[str, dict[str, Any]]:
    """Per weight constant: ``op`` type, stored ``dtype`` (e.g. ``int8``, ``uint4``, ``fp16``) and ``shape``."""
    from coremltools.converters.mil.mil import types

    summary = {}
    for name, op in _weight_ops(path).items():
        stored = op.outputs[0] if op.op_type == "const" else op.inputs.get("data", op.inputs.get("indices"))
        extra = {"lut_shape": tuple(op.inputs["lut"].shape)} if "lut" in op.inputs else {}
        summary[name] = {
            "op": op.op_type, "dtype": types.builtin_to_string(stored.dtype), "shape": tuple(stored.shape), **extra,
        }
    return summary


def read_metadata(path: Path) -> dict[str, Any]:
    """Author, license, description and the user-defined metadata of a saved package."""
    meta = _model(path).get_spec().description.metadata
    custom = dict(meta.userDefined)
    return {"author": meta.author, "license": meta.license, "description": meta.shortDescription, "custom": custom}


def input_output_names(path: Path) -> tuple[list[str], list[str]]:
    description = _model(path).get_spec().description
    return [i.name for i in description.input], [o.name for o in description.output]


class CoreMLSession:
    """A loaded ``.mlpackage`` on macOS: ``run`` is one ``MLModel.predict`` call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._model = _model(self.path, load=True)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        try:
            outputs = self._model.predict({name: np.asarray(value) for name, value in inputs.items()})
        except Exception as exc:  # Core ML raises bare RuntimeErrors
            raise BackendFailedError(
                f"{self.path}: Core ML predict failed: {exc}", "check input names, shapes and dtypes against the spec"
            ) from exc
        return {name: np.array(value) for name, value in outputs.items()}

    def close(self) -> None:
        self._model = None


class TorchReadbackSession:
    """A decode chunk run in torch fp16 with the weights read back from its ``.mlpackage``.

    ``chunk`` is the plan's decode module for this package (on the meta device is
    fine): its parameters are replaced by the package's dequantized constants.
    """

    def __init__(self, path: Path, chunk: Any) -> None:
        import torch

        self.path, self.chunk = Path(path), chunk
        weights = read_weights(self.path)
        aliases = json.loads(read_metadata(self.path)["custom"].get(ALIASES_KEY, "{}"))
        for name, current in chunk.state_dict(keep_vars=True).items():
            value = torch.from_numpy(_weight_for(weights, aliases, name, self.path)).to(torch.float16)
            if tuple(value.shape) != tuple(current.shape):
                raise BackendFailedError(
                    f"{self.path}: weight {name} is {tuple(value.shape)} in the package, the plan implies "
                    f"{tuple(current.shape)}", "rebuild the bundle from this plan",
                )
            owner, _, attr = name.rpartition(".")
            setattr(chunk.get_submodule(owner), attr, torch.nn.Parameter(value, requires_grad=False))
        chunk.eval()

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np
        import torch

        args = []
        for name in self.chunk.input_names():
            array = np.asarray(inputs[name])
            tensor = torch.from_numpy(np.ascontiguousarray(array))
            args.append(tensor.to(torch.float16) if tensor.is_floating_point() else tensor.to(torch.int32))
        with torch.no_grad():
            outputs = self.chunk(*args)
        return {name: value.numpy().copy() for name, value in zip(self.chunk.output_names(), outputs)}

    def close(self) -> None:
        self.chunk = None


def _weight_for(weights: dict[str, Any], aliases: dict[str, str], name: str, path: Path) -> Any:
    # A merged constant (tied head, equal biases) is found under the name of the one that survived.
    key = const_name(name) if const_name(name) in weights else aliases.get(name, const_name(name))
    if key not in weights:
        raise BackendFailedError(
            f"{path}: no weight constant {key} for {name}",
            f"the package was not exported from this plan's module; constants: {', '.join(sorted(weights)[:5])}...",
        )
    return weights[key]

