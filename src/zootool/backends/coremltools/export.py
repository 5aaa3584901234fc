"""Core ML backend: torch decode module -> compressed ML Program ``.mlpackage`` (coremltools).

For devices before OS 27, which have Core ML but no Core AI. Heavy imports (torch,
coremltools) happen inside functions, so importing this module is cheap.

Pipeline of :func:`export_mlpackage`: k-means groups are clustered in torch (the
same 1-D k-means as the Core AI backend) -> fp32 ``torch.jit.trace`` ->
``ct.convert`` (ML Program, fp16 compute, the platform's deployment target) ->
``linear_quantize_weights`` (symmetric / affine groups) and ``palettize_weights``
(``unique`` mode over the already clustered weights: one LUT per output row) ->
metadata -> ``save`` beside the target, then renamed into place. Each stack failure
becomes a :class:`BackendFailedError` naming the stage.

Weight constants keep the torch parameter path (``layers.0.mlp.up_proj.weight`` ->
``layers_0_mlp_up_proj_weight_to_fp16``), except where coremltools merged identical
constants (a tied head, equal zero biases): those parameters are recorded in the
user-defined metadata ``zootool.weight_aliases``, and where it folded a uniform weight away
(``x * 1``: a norm weight of ones, as transformers initialises it) that weight's one value is
recorded in ``zootool.folded_weights``, so ``coremltools_runtime`` can read every weight of a
saved package back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...config.zoo_data import OS_NAMES
from ...errors import BackendFailedError, BackendUnavailableError, ConfigError, ZooError
from ...phase_clock import timed
from .names import ALIASES_KEY, FOLDED_KEY, const_name

MIN_TARGETS = {"iOS": 18, "macOS": 15}  # per-block int8 and per-row LUTs need the iOS 18 opset
# coremltools has no iPadOS targets: iPadOS runs the iOS ones.
TARGET_FAMILY = {"iPadOS": "iOS"}
_INSTALL_HINT = "install coremltools (pip install 'coremltools>=9') in the zoo's environment"
_STAGE_HINTS = {
    "quantize": "check the scheme's formats: symmetric/affine int8 or int4 blocks, or k-means LUTs",
    "trace": "the module must be torch.jit.trace-able with static shapes",
    "convert": "a torch op has no coremltools lowering; rewrite that part of the export module",
    "compress": "check that every quantized weight's input dimension is a multiple of the block size",
    "save": "check that the output directory is writable and has free space",
}


def deployment_target(os_name: str, min_os: int) -> str:
    """The coremltools target name (``iOS18``, ``macOS15``) for a platform's OS and minimum version."""
    family = TARGET_FAMILY.get(OS_NAMES.get(os_name, ""), OS_NAMES.get(os_name))
    if family is None:
        raise ConfigError(f"no Core ML deployment target for OS {os_name!r}", f"use one of {', '.join(OS_NAMES)}")
    if min_os < MIN_TARGETS[family]:
        raise ConfigError(
            f"{family} {min_os} is too old for the Core ML backend (block-quantized and palettized weights "
            f"need {family} {MIN_TARGETS[family]})",
            f"raise the platform's min-os to {MIN_TARGETS[family]} or later",
        )
    return f"{family}{min_os}"


def export_mlpackage(
    graph: Any,
    out_path: Path,
    *,
    scheme: Any = "fp16",
    target: str = "iOS18",
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a family decode ``graph`` to a stateful ML Program at ``out_path`` (``.mlpackage``).

    The graph is wrapped as swift-transformers drives it (``coremltools_stateful``): inputs
    ``inputIds`` and ``causalMask``, states ``keyCache`` / ``valueCache``, output ``logits``.
    It is modified in place (k-means groups are clustered).
    ``scheme`` is a scheme id or object as for the Core AI backend: each tensor group
    it quantizes maps to a Core ML compression (symmetric -> ``linear_symmetric``,
    affine -> ``linear``, k-means -> per-row LUT palettization); other weights are
    stored fp16. ``target`` is a ``coremltools.target`` name. ``metadata`` keys
    ``author``, ``license``, ``description`` and ``custom`` (user-defined strings).
    """
    ct = _require_stack()
    if Path(out_path).suffix != ".mlpackage":
        raise ConfigError(f"{out_path}: a Core ML package path must end in .mlpackage")
    if not hasattr(ct.target, target):
        raise ConfigError(f"coremltools {ct.__version__} has no deployment target {target!r}")
    from .compress import cluster_kmeans_groups, compression_configs, resolve_formats
    from .stateful import StatefulCoreMLGraph

    chosen = _stage("quantize", lambda: resolve_formats(scheme))
    module = _stage("trace", lambda: StatefulCoreMLGraph(graph))
    clustered = _stage("quantize", lambda: cluster_kmeans_groups(module, chosen))
    traced = _stage("trace", lambda: _trace(module))
    model = _stage("convert", lambda: _convert(ct, traced, module, getattr(ct.target, target)))
    aliases, folded = _stage("convert", lambda: unstored_weights(model, module))
    model = _stage("compress", lambda: _compress(model, compression_configs(module, chosen, clustered)))
    custom = {
        "zootool.scheme": chosen.id, "zootool.deployment_target": target, ALIASES_KEY: json.dumps(aliases),
        FOLDED_KEY: json.dumps(folded), **dict((metadata or {}).get("custom", {})),
    }
    write_metadata(model, {**dict(metadata or {}), "custom": custom})
    return _stage("save", lambda: _save(model, Path(out_path)))


def _require_stack() -> Any:
    try:
        import coremltools as ct
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(f"the Core ML conversion stack is not importable: {exc}", _INSTALL_HINT) from exc
    return ct


def _stage(name: str, action: Any) -> Any:
    try:
        with timed(name):
            return action()
    except ZooError:
        raise
    except Exception as exc:  # coremltools raises bare ValueError/RuntimeError/...
        message = f"Core ML {name} stage failed: {type(exc).__name__}: {exc}"
        raise BackendFailedError(message.splitlines()[0][:2000], _STAGE_HINTS[name]) from exc


def _trace(module: Any) -> Any:
    import torch

    # Traced in fp32: coremltools stores weights and computes in fp16 (compute_precision) itself.
    module.eval().to(torch.float32)
    with torch.no_grad():
        return torch.jit.trace(module, _example(module), check_trace=False)


def _example(module: Any) -> tuple[Any, Any]:
    import torch

    query, total = 3, 5  # distinct, so the trace keeps both sizes symbolic
    return torch.zeros(1, query, dtype=torch.int32), torch.zeros(1, 1, query, total)


def _convert(ct: Any, traced: Any, module: Any, target: Any) -> Any:
    import numpy as np

    from .stateful import CAUSAL_MASK, INPUT_IDS, LOGITS, STATE_NAMES

    context = ct.RangeDim(1, module.max_context)
    query = ct.RangeDim(1, module.max_context)
    inputs = [
        ct.TensorType(name=INPUT_IDS, shape=(1, query), dtype=np.int32),
        ct.TensorType(name=CAUSAL_MASK, shape=(1, 1, ct.RangeDim(1, module.max_context), context), dtype=np.float16),
    ]
    states = [
        ct.StateType(wrapped_type=ct.TensorType(shape=tuple(getattr(module, name).shape), dtype=np.float16), name=name)
        for name in STATE_NAMES
    ]
    return ct.convert(
        traced, inputs=inputs, outputs=[ct.TensorType(name=LOGITS, dtype=np.float16)], states=states,
        convert_to="mlprogram", minimum_deployment_target=target, compute_precision=ct.precision.FLOAT16,
        compute_units=ct.ComputeUnit.ALL, skip_model_load=True,
    )


def unstored_weights(model: Any, module: Any) -> tuple[dict[str, str], dict[str, float]]:
    """Parameters with no constant of their own: ``(aliases, folded)``.

    ``aliases``: name -> the identical constant coremltools kept instead (a tied head, equal
    biases). ``folded``: name -> the one value of a uniform weight whose constant the converter
    removed with the no-op it fed (a norm weight of ones). Anything else is an export failure.
    """
    import numpy as np
    import torch

    consts = [op for op in model._mil_program.functions["main"].operations if op.op_type == "const"]
    names = {op.name for op in consts}
    aliases, folded = {}, {}
    for name, tensor in weight_tensors(module).items():
        if const_name(name) in names:
            continue
        value = tensor.detach().to(torch.float16).numpy()
        match = next((op.name for op in consts if op.outputs[0].shape == value.shape
                      and np.array_equal(op.outputs[0].val, value)), None)
        if match is not None:
            aliases[name] = match
        elif value.size and (value == value.flat[0]).all():
            folded[name] = float(value.flat[0])
        else:
            raise BackendFailedError(f"the converted model holds no constant for parameter {name}",
                                     "the export module's parameters must reach the graph as constants")
    return aliases, folded


def weight_tensors(module: Any) -> dict[str, Any]:
    """The module's weights by parameter path: its state dict without the KV state buffers."""
    from .stateful import STATE_NAMES

    return {name: t for name, t in module.state_dict(keep_vars=True).items() if name not in STATE_NAMES}


def _compress(model: Any, configs: tuple[dict[str, Any], dict[str, Any]]) -> Any:
    import coremltools.optimize.coreml as cto

    quantized, palettized = configs
    if quantized:
        model = cto.linear_quantize_weights(model, cto.OptimizationConfig(op_name_configs=quantized))
    if palettized:
        model = cto.palettize_weights(model, cto.OptimizationConfig(op_name_configs=palettized))
    return model


def write_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Author, license, short description and user-defined (string) metadata on an ``MLModel``."""
    if "author" in metadata:
        model.author = str(metadata["author"])
    if "license" in metadata:
        model.license = str(metadata["license"])
    if "description" in metadata:
        model.short_description = str(metadata["description"])
    for key, value in dict(metadata.get("custom", {})).items():
        model.user_defined_metadata[str(key)] = value if isinstance(value, str) else json.dumps(value)


def _save(model: Any, out_path: Path) -> Path:
    # Written next to the target, then swapped, so a failed save never leaves half a package.
    staging = out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial.mlpackage")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(str(staging))
    if out_path.exists():
        shutil.rmtree(out_path)
    staging.rename(out_path)
    return out_path
