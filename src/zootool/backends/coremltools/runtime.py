"""Reading a saved ``.mlpackage`` back, and running it: Core ML on macOS, its weights in torch elsewhere.

``MLModel.predict`` exists only on macOS. On Linux a package can still be opened
as a MIL program: its weight constants are read back and dequantized by
coremltools itself (``materialized_val_inference`` of ``constexpr_*`` ops), so the
gate can run the bundle's own stored weights in the torch decode module.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ...errors import BackendFailedError, BackendUnavailableError
from .names import ALIASES_KEY, FOLDED_KEY, WEIGHT_SUFFIX, const_name

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


def program_ops(path: Path) -> dict[str, int]:
    """The main function's ops by type (those of nested blocks included), as the saved program holds them."""
    def walk(operations: Any) -> Iterator[str]:
        for op in operations:
            yield op.op_type
            for block in op.blocks:
                yield from walk(block.operations)

    return dict(Counter(walk(read_program(path).functions["main"].operations)))


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


def signature(path: Path) -> dict[str, Any]:
    """Input, output and state features of a package: name -> (type, shape) as the spec says."""
    description = _model(path).get_spec().description

    def feature(f: Any) -> tuple[str, list[int]]:
        kind = f.type.WhichOneof("Type")
        array = f.type.stateType.arrayType if kind == "stateType" else getattr(f.type, "multiArrayType", None)
        return kind, list(array.shape) if array is not None else []

    return {
        "inputs": {f.name: feature(f) for f in description.input},
        "outputs": {f.name: feature(f) for f in description.output},
        "states": {f.name: feature(f) for f in description.state},
    }


class CoreMLGraph:
    """A stateful ``.mlpackage`` driven as swift-transformers drives it: ``inputIds`` + ``causalMask``.

    On macOS this is Core ML itself (``make_state`` + ``predict``). Elsewhere the package's
    own weights, read back and dequantized by coremltools, run in the zoo's torch graph
    rebuilt from the ``config.json`` stored in the package.
    """

    query_len = None  # ranged inputIds: any number of tokens per call

    def __init__(self, path: Path, max_context: int) -> None:
        self.path, self.max_context = Path(path), max_context
        self._model = _model(self.path, load=True) if CORE_ML_RUNS_HERE else _readback_graph(self.path)
        self.reset()

    def reset(self) -> None:
        if CORE_ML_RUNS_HERE:
            self._state = self._model.make_state()
        else:
            self._model.reset()

    def __call__(self, input_ids: Any, total: int) -> Any:
        import numpy as np

        query = input_ids.shape[1]
        rows = np.arange(total - query, total).reshape(-1, 1)
        mask = np.where(np.arange(total) <= rows, 0.0, -np.inf).astype(np.float16).reshape(1, 1, query, total)
        return self._predict(input_ids.astype(np.int32), mask)[0]

    def _predict(self, input_ids: Any, mask: Any) -> Any:
        import numpy as np

        from .stateful import CAUSAL_MASK, INPUT_IDS, LOGITS

        if CORE_ML_RUNS_HERE:
            try:
                out = self._model.predict({INPUT_IDS: input_ids, CAUSAL_MASK: mask}, state=self._state)
            except Exception as exc:  # Core ML raises bare RuntimeErrors
                raise BackendFailedError(f"{self.path}: Core ML predict failed: {exc}") from exc
            return np.asarray(out[LOGITS], dtype=np.float32)
        import torch

        with torch.no_grad():
            logits = self._model(torch.from_numpy(input_ids), torch.from_numpy(mask))
        return logits.float().numpy()

    def close(self) -> None:
        self._model = None


def _readback_graph(path: Path) -> Any:
    """The package's graph in torch fp16, every weight taken from the package itself."""
    import torch

    from ...arch.decoder import build_decode_graph
    from ...arch.registry import architecture_of
    from .export import weight_tensors
    from .stateful import StatefulCoreMLGraph

    custom = read_metadata(path)["custom"]
    arch = architecture_of(json.loads(custom["zootool.config"]), f"{path} (its zootool.config)")
    graph = build_decode_graph(arch, int(custom["zootool.context_length"]), dtype=torch.float16)
    module = StatefulCoreMLGraph(graph)
    weights, aliases = read_weights(path), json.loads(custom.get(ALIASES_KEY, "{}"))
    folded = json.loads(custom.get(FOLDED_KEY, "{}"))
    for name, current in weight_tensors(module).items():
        if name in folded:  # a uniform weight (norm of ones) the converter folded away with its no-op
            value = torch.full(current.shape, folded[name], dtype=torch.float16)
        else:
            value = torch.from_numpy(_weight_for(weights, aliases, name, path)).to(torch.float16)
        if tuple(value.shape) != tuple(current.shape):
            raise BackendFailedError(
                f"{path}: weight {name} is {tuple(value.shape)} in the package, the graph implies "
                f"{tuple(current.shape)}", "rebuild the bundle",
            )
        owner, _, attr = name.rpartition(".")
        setattr(module.get_submodule(owner), attr, torch.nn.Parameter(value, requires_grad=False))
    return module.eval()


def _weight_for(weights: dict[str, Any], aliases: dict[str, str], name: str, path: Path) -> Any:
    # A merged constant (tied head, equal biases) is found under the name of the one that survived.
    key = const_name(name) if const_name(name) in weights else aliases.get(name, const_name(name))
    if key not in weights:
        raise BackendFailedError(
            f"{path}: no weight constant {key} for {name}",
            f"the package was not exported from this plan's module; constants: {', '.join(sorted(weights)[:5])}...",
        )
    return weights[key]

