"""Core AI backend: torch module -> quantized ``.aimodel``, plus its Linux CPU runtime.

Heavy imports (torch, coreai, coreai_torch) happen inside functions, so importing
this module is cheap and works without the conversion stack installed.

Pipeline of :func:`export_aimodel`: quantize in place (``coreai_quant``) -> fp16 ->
``torch.export`` -> ``run_decompositions(get_decomp_table())`` -> ``TorchConverter``
(custom kernels registered when asked) -> ``to_coreai`` -> ``save_asset`` ->
``update_metadata``. Every failure of the stack becomes a :class:`BackendFailedError`
naming the stage.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import BackendFailedError, ConfigError
from ...kernels.rules import GATHER_QMM, GATHER_QMM_HINT, gather_qmm_refusal
from ...phase_clock import timed
from .stack import load_asset, require_stack
from .summary import has_custom_kernel, storage_summary  # noqa: F401 - part of this backend's API

KERNELS = ("gather_mm", GATHER_QMM)
METADATA_FIELDS = {"author": "author", "license": "license", "description": "model_description"}
_STAGE_HINTS = {
    "quantize": "check the scheme against the model's tensor groups (see docs/coreai-notes.md)",
    "export": "the module must be torch.export-able: no data-dependent shapes or Python control flow on tensors",
    "convert": "an aten op has no Core AI lowering; rewrite that part of the export module",
    "save": "check that the output directory is writable and has free space",
    "metadata": "metadata values must be JSON-serialisable",
}


def export_aimodel(
    module: Any,
    example_inputs: tuple[Any, ...] | Mapping[str, Any],
    out_path: Path,
    *,
    scheme: Any = "fp16",
    kernel: str = "gather_mm",
    metadata: Mapping[str, Any] | None = None,
    output_names: Sequence[str] | None = None,
    state_names: Sequence[str] | None = None,
    dynamic_shapes: Any = None,
    consume_weights: bool = False,
) -> Path:
    """Convert ``module`` to a Core AI asset at ``out_path`` (a ``.aimodel`` directory).

    ``module`` is modified in place: weights of quantized groups are replaced and
    every other float *parameter* cast to fp16, so the graph computes in fp16 as on
    device (buffers keep their dtype: modules hold fp32 buffers on purpose, e.g. RoPE
    frequencies). ``example_inputs`` as a mapping gives input names (in ``forward``
    argument order), else ``module.input_names`` is used when present; float inputs
    are cast to fp16 and int64 to int32 (Core AI has no 64-bit types).
    ``state_names`` (default ``module.state_names()`` when present) name the trailing
    ``forward`` arguments the module writes in place: they become Core AI states, growing
    where ``dynamic_shapes`` gives them a dynamic axis. ``output_names`` defaults to
    ``module.output_names`` (an attribute or a method).
    ``scheme`` is a scheme id (``fp16``, ``sym8``, ``int4km``) or a scheme object;
    ``kernel`` is ``gather_mm`` (stock composite) or ``gather_qmm`` (Metal kernel).
    ``metadata`` keys ``author``, ``license``, ``description`` fill the asset fields;
    ``custom`` is a mapping stored as JSON strings. ``consume_weights`` frees each weight
    of ``module`` once the converter has copied it (``coreai_consume``): the module cannot
    run afterwards, and the export needs one copy of the stored weights instead of two.
    """
    _check_request(kernel, Path(out_path))
    scheme = _quantize(module, scheme, kernel)
    names, args = _prepare_inputs(module, example_inputs)
    inputs, states, outputs = _io_names(module, names, state_names, output_names)
    program = _stage("export", lambda: _export(module, args, dynamic_shapes))
    if kernel == GATHER_QMM and not _calls_kernel(program):
        raise ConfigError("kernel gather_qmm was asked for, but the model has no sym8 experts for it", GATHER_QMM_HINT)
    composites = _composite_exporter(module, program, args, dynamic_shapes)
    ai_program = _stage("convert", lambda: _convert(program, (inputs, outputs, states), kernel, consume_weights,
                                                    composites))
    del program  # with consume_weights its tensors are empty already; else the module keeps them
    asset = _stage("save", lambda: _save(ai_program, Path(out_path)))
    custom = {"zootool.scheme": scheme.id, "zootool.kernel": kernel, **dict((metadata or {}).get("custom", {}))}
    _stage("metadata", lambda: write_metadata(asset, {**dict(metadata or {}), "custom": custom}))
    return Path(out_path)


def _check_request(kernel: str, out_path: Path) -> None:
    require_stack()
    if kernel not in KERNELS:
        raise ConfigError(f"unknown expert kernel {kernel!r}", f"use one of: {', '.join(KERNELS)}")
    if out_path.suffix != ".aimodel":
        raise ConfigError(f"{out_path}: a Core AI asset path must end in .aimodel")


def export_decode_graph(
    graph: Any, out_path: Path, *, query_len: int | None, scheme: Any, kernel: str, metadata: Mapping[str, Any],
    consume_weights: bool = False,
) -> Path:
    """A family's decode graph as the engines load it: two inputs, in-place states, logits.

    ``query_len`` fixes the number of tokens per call (1 where a kernel needs it);
    ``None`` leaves it dynamic so the engine's chunked prefill works with its defaults.
    """
    return export_aimodel(
        graph, graph.example_inputs(query_len), out_path, scheme=scheme, kernel=kernel, metadata=metadata,
        state_names=graph.state_names(), dynamic_shapes=graph.dynamic_shapes(query_len),
        consume_weights=consume_weights,
    )


def _stage(name: str, action: Any) -> Any:
    try:
        with timed(name):
            return action()
    except (BackendFailedError, ConfigError):
        raise
    except Exception as exc:  # the stack raises bare RuntimeError/ValueError/...
        message = f"Core AI {name} stage failed: {type(exc).__name__}: {exc}"
        raise BackendFailedError(message.splitlines()[0][:2000], _STAGE_HINTS[name]) from exc


def quantize_unit(module: Any, scheme: Any, kernel: str, unit: tuple[str, ...]) -> None:
    """Quantize just-loaded submodules (``("layers.3",)``) of ``module`` and return its fp16 memory.

    :func:`export_aimodel` then finds those weights quantized already and leaves them.
    """
    from ...build.memory import return_freed_memory

    _quantize(module, scheme, kernel, within=unit)
    return_freed_memory()


def _quantize(module: Any, scheme: Any, kernel: str, within: tuple[str, ...] | None = None) -> Any:
    """Quantize ``module`` in place; returns the scheme object (an id is looked up in the zoo)."""
    from ...config.zoo_data import as_scheme
    from .quant import quantize_module

    scheme = as_scheme(scheme)
    refusal = gather_qmm_refusal(scheme) if kernel == GATHER_QMM else None
    if refusal:
        raise ConfigError(refusal, GATHER_QMM_HINT)
    _stage("quantize", lambda: quantize_module(module, scheme, use_kernel=kernel == GATHER_QMM, within=within))
    return scheme


def _prepare_inputs(module: Any, example_inputs: Any) -> tuple[list[str], tuple[Any, ...]]:
    import torch

    module.eval()
    for parameter in module.parameters():
        if parameter.is_floating_point():
            parameter.data = parameter.data.to(torch.float16)
    if isinstance(example_inputs, Mapping):
        names, values = list(example_inputs), list(example_inputs.values())
    else:
        names = _declared_names(module, "input_names") + _declared_names(module, "state_names")
        values = list(example_inputs)
    return names, tuple(_device_dtype(v, torch) for v in values)


def _io_names(module: Any, names: list[str], state_names: Sequence[str] | None,
              output_names: Sequence[str] | None) -> tuple[list[str], list[str], list[str]]:
    """(inputs, states, outputs): the given names, else those the module declares."""
    states = list(state_names if state_names is not None else _declared_names(module, "state_names"))
    outputs = list(output_names or _declared_names(module, "output_names"))
    return [name for name in names if name not in states], states, outputs


def _declared_names(module: Any, attr: str) -> list[str]:
    names = getattr(module, attr, None)
    return list((names() if callable(names) else names) or [])


def _device_dtype(value: Any, torch: Any) -> Any:
    if value.is_floating_point():
        return value.to(torch.float16)
    return value.to(torch.int32) if value.dtype == torch.int64 else value


def _composite_exporter(module: Any, program: Any, args: tuple[Any, ...], dynamic_shapes: Any) -> Any:
    """``(module, export_fn, specs)`` for ``add_pytorch_module`` when ``module`` computes through the
    converter's composites (``module.composites``), else None.

    The converter exports the module once to validate it, then again with the composite call sites
    marked; the first is answered with ``program``, already exported, so the export is not repeated.
    """
    names = list(getattr(module, "composites", None) or [])
    if not names:
        return None
    from .composites import externalize_specs

    first = [program]

    def export_fn(live: Any) -> Any:
        return first.pop() if first else _export(live, args, dynamic_shapes)

    return module, export_fn, externalize_specs(names)


def _export(module: Any, args: tuple[Any, ...], dynamic_shapes: Any) -> Any:
    import torch
    import torch.fx.experimental._config as fx_config
    from coreai_torch import get_decomp_table

    # Size-oblivious: a dynamic size of 1 must not change strides' meaning, or torch.export
    # guards every state view on "past != 1" and refuses the dynamic context.
    with torch.no_grad(), fx_config.patch(backed_size_oblivious=True):
        program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
    return program.run_decompositions(get_decomp_table())


def _calls_kernel(program: Any) -> bool:
    from ...kernels.gather_qmm import KERNEL_NAME

    return any(KERNEL_NAME in str(node.target) for node in program.graph.nodes)


def _convert(program: Any, names: tuple[list[str], list[str], list[str]], kernel: str, consume: bool,
             composites: Any) -> Any:
    """``names``: (inputs, outputs, states); ``composites``: what :func:`_composite_exporter` gave."""
    from coreai_torch import TorchConverter

    from .consume import consuming_converter

    mode = TorchConverter.Mode.RELEASE
    converter = consuming_converter(mode) if consume else TorchConverter(mode=mode)
    if kernel == "gather_qmm":
        from ...kernels.gather_qmm import gather_qmm_kernel

        converter.register_custom_kernels([gather_qmm_kernel()])
    inputs, outputs, states = names
    named = {"input_names": inputs or None, "output_names": outputs or None, "state_names": states or None}
    if composites is None:
        converter.add_exported_program(program, **named)
    else:
        module, export_fn, specs = composites
        converter.add_pytorch_module(module, export_fn=export_fn, externalize_modules=specs, **named)
    return converter.to_coreai()


def _save(ai_program: Any, out_path: Path) -> Any:
    from coreai.authoring.asset import AIModelAsset

    from .save import save_asset

    # Write next to the target, then swap, so a failed save never leaves half an asset.
    staging = out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial.aimodel")
    try:
        save_asset(ai_program, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_path.exists():
        shutil.rmtree(out_path)
    staging.rename(out_path)
    return AIModelAsset.load(out_path)


def write_metadata(asset: Any, metadata: Mapping[str, Any]) -> None:
    """Set author/license/description and ``custom`` JSON values on an asset."""
    custom = {key: json.dumps(value) for key, value in dict(metadata.get("custom", {})).items()}

    def update(meta: Any) -> None:
        for key, attr in METADATA_FIELDS.items():
            if key in metadata:
                setattr(meta, attr, str(metadata[key]))
        for key, value in custom.items():
            meta.set_custom(key, value)

    asset.update_metadata(update)


def read_metadata(aimodel_path: Path) -> dict[str, Any]:
    """The asset's metadata fields, with ``custom`` values decoded from JSON."""
    asset = load_asset(aimodel_path)
    meta = asset.metadata
    custom = {key: json.loads(value) for key, value in meta.creator_defined_metadata.items()}
    fields = {key: getattr(meta, attr) for key, attr in METADATA_FIELDS.items()}
    return {**fields, "custom": custom}


def run_aimodel(aimodel_path: Path, inputs: Mapping[str, Any], function: str = "main") -> dict[str, Any]:
    """Load, run once on this machine's Core AI runtime, unload. numpy in, numpy out."""
    from .runtime import AimodelSession

    with AimodelSession(aimodel_path, function) as session:
        return session.run(inputs)
