"""The ``Backend`` protocol and the registry of the two backends, Core AI and Core ML.

Everything that differs by backend is asked of its entry here: the model file it writes,
which weight formats it can store (checked when planning, before any download), how it
exports and quantizes, how its models run for the gate, and what its card says. Importing
this module is cheap: each backend imports its conversion stack inside the method that
needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .storage import coreai_refusal, coreml_refusal

if TYPE_CHECKING:
    from ..plan.resolve import BuildPlan
    from ..config.zoo_data import QuantSpec, Scheme

# convert(graph, model path, asset metadata) -> the model path
Converter = Callable[[Any, Path, dict], Path]
# quantize(graph, just-loaded unit prefixes)
UnitQuantizer = Callable[[Any, tuple[str, ...]], None]
# A dense family has no expert matmul; the Core AI exporter still takes a kernel name.
NO_KERNEL = "none"


@dataclass(frozen=True)
class CardFacts:
    """What a model card says of the backend."""

    library_name: str
    tags: tuple[str, ...]
    runtime_name: str
    asset_format: str


class Backend(Protocol):
    """One way of turning a decode graph into the bundle's model file."""

    id: str
    suffix: str
    card: CardFacts
    # A LanguageBundle is what CoreAIKit's engines load (Core ML packages are not).
    language_bundle: bool

    def storage_refusal(self, group: str, spec: QuantSpec) -> str | None:
        """Why this backend cannot store ``group`` weights as ``spec``, or None."""

    def converter(self, plan: BuildPlan, scheme: Scheme, kernel: str) -> Converter:
        """``convert(graph, path, metadata)`` writing the plan's model file."""

    def unit_quantizer(self, scheme: Scheme, kernel: str) -> UnitQuantizer | None:
        """Quantize while the weights load (None: the backend quantizes its own program)."""

    def runtime_name(self, twin: bool) -> str:
        """How the gate runs this backend's models on this machine (``twin``: the kernel-free twin)."""

    def graph_refusal(self, layout: Any) -> str | None:
        """Why this backend cannot hold a decode graph of ``layout`` (``arch.layout``), or None."""

    def program_bytes(self, layout: Any, scheme: Scheme) -> int:
        """Predicted bytes of the model file beside its weights (0 where not modelled)."""

    def program_ops(self, model: Path) -> dict[str, int]:
        """The converted program's ops by name, as counted in the saved model file."""


def expert_kernel(kernel: str) -> str:
    """The Core AI exporter's expert kernel for a plan's kernel id (a dense model has none)."""
    return "gather_mm" if kernel == NO_KERNEL else kernel


class CoreAI:
    id = "coreai"
    suffix = ".aimodel"
    card = CardFacts("coreai", ("coreai", "aimodel"), "Core AI", ".aimodel")
    language_bundle = True

    def storage_refusal(self, group: str, spec: QuantSpec) -> str | None:
        return coreai_refusal(group, spec)

    def converter(self, plan: BuildPlan, scheme: Scheme, kernel: str) -> Converter:
        from .coreai.export import export_decode_graph

        # The bundle's kernel fixes tokens per call (gather_qmm: 1); its gate twins keep that shape.
        from .coreai.composites import composites_enabled

        fixed = plan.kernel.query_len
        composites = composites_enabled()

        def convert(graph: Any, path: Path, meta: dict) -> Path:
            if composites:  # norms and RoPE as the converter's composites, as Apple's exporter has them
                graph.use_composites()
            return export_decode_graph(graph, path, query_len=fixed, scheme=scheme, kernel=expert_kernel(kernel),
                                       metadata=meta, consume_weights=True)  # export_model drops the graph after

        return convert

    def unit_quantizer(self, scheme: Scheme, kernel: str) -> UnitQuantizer | None:
        from .coreai.export import quantize_unit

        return lambda graph, unit: quantize_unit(graph, scheme, expert_kernel(kernel), unit)

    def graph_refusal(self, layout: Any) -> str | None:
        return None  # Core AI states may be growing KV caches or fixed windows alike

    def program_bytes(self, layout: Any, scheme: Scheme) -> int:
        from ..plan.program import program_bytes

        return program_bytes(layout, scheme)

    def program_ops(self, model: Path) -> dict[str, int]:
        from .coreai.summary import storage_summary

        return storage_summary(model)["ops"]

    def runtime_name(self, twin: bool) -> str:
        import platform

        where = f"Core AI runtime on {platform.system()} {platform.machine()} CPU, through the engine driver"
        return where + (" (kernel-free twin: GatherMM composite, same quantized weights)" if twin else "")


class CoreML:
    id = "coremltools"
    suffix = ".mlpackage"
    card = CardFacts("coreml", ("coreml", "mlpackage"), "Core ML", ".mlpackage")
    language_bundle = False

    def storage_refusal(self, group: str, spec: QuantSpec) -> str | None:
        return coreml_refusal(group, spec)

    def converter(self, plan: BuildPlan, scheme: Scheme, kernel: str) -> Converter:
        from .coremltools.export import deployment_target, export_mlpackage

        target = deployment_target(plan.platform.os, plan.platform.min_os)
        return lambda graph, path, meta: export_mlpackage(graph, path, scheme=scheme, target=target, metadata=meta)

    def unit_quantizer(self, scheme: Scheme, kernel: str) -> UnitQuantizer | None:
        return None  # Core ML compresses the converted program's constants, not torch modules

    def program_bytes(self, layout: Any, scheme: Scheme) -> int:
        return 0  # not modelled: an ML Program's size beside its weights was not measured

    def program_ops(self, model: Path) -> dict[str, int]:
        from .coremltools.runtime import program_ops

        return program_ops(model)

    def graph_refusal(self, layout: Any) -> str | None:
        if layout.fixed_state_mixers:
            return ("the model's short-conv or recurrent layers keep a fixed state beside the KV caches, and "
                    "swift-transformers' Core ML models carry only KV caches")
        return None

    def runtime_name(self, twin: bool) -> str:
        from .coremltools.runtime import runtime_name

        return runtime_name()


# Keyed by the ids zoo data may name (zoo_data.BACKENDS); tests check the two agree.
REGISTRY: dict[str, Backend] = {backend.id: backend for backend in (CoreAI(), CoreML())}


def backend(backend_id: str) -> Backend:
    """The registered backend of that id; ids are validated when zoo data and recipes are read."""
    return REGISTRY[backend_id]


def scheme_refusal(backend_id: str, scheme: Scheme) -> str | None:
    """The first tensor group of ``scheme`` that the backend cannot store, said as a sentence."""
    chosen = backend(backend_id)
    return next((why for group, spec in scheme.quantize.items() if (why := chosen.storage_refusal(group, spec))), None)
