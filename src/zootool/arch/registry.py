"""The architecture families the zoo knows, one line each, and how a ``model_type`` finds its family.

Adding a family: write ``arch/families/<name>.py`` (one typed config class, see
``arch.contract``) and add its class to ``_FAMILY_CLASSES`` below.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, NotImplementedFeatureError
from .contract import ArchConfig, Family
from .families.gemma3_text import Gemma3TextArch
from .families.lfm2 import Lfm2Arch
from .families.lfm2_moe import Lfm2MoeArch
from .families.llama import LlamaArch
from .families.mixtral import MixtralArch
from .families.olmo2 import Olmo2Arch
from .families.phi3 import Phi3Arch
from .families.qwen2 import Qwen2Arch
from .families.qwen2_moe import Qwen2MoeArch
from .families.qwen3_5 import Qwen3_5TextArch
from .families.qwen3_moe import Qwen3MoeArch
from .families.qwen3_next import Qwen3NextArch
from .families.smollm3 import SmolLM3Arch

_FAMILY_CLASSES: tuple[Family, ...] = (
    LlamaArch,
    Lfm2MoeArch,
    Lfm2Arch,
    Qwen3MoeArch,
    MixtralArch,
    Qwen2Arch,
    Gemma3TextArch,
    Phi3Arch,
    Olmo2Arch,
    SmolLM3Arch,
    Qwen2MoeArch,
    Qwen3NextArch,
    Qwen3_5TextArch,
)

FAMILIES: dict[str, Family] = {family.family_tag: family for family in _FAMILY_CLASSES}
# transformers model_type -> family; where several read one layout, as mlx-lm's MODEL_REMAPPING.
MODEL_TYPES: dict[str, Family] = {t: family for family in _FAMILY_CLASSES for t in family.model_types}
# Model types transformers knows that no family reads yet, with what stands in the way.
NOT_YET: dict[str, str] = {
    "qwen3_5": ("Qwen3.5 hybrid: its gated delta-net and gated attention blocks are qwen3_next's, but no family "
                "reads its vision-language config.json (text_config, weights under model.language_model) yet"),
    "qwen3_5_moe": ("Qwen3.5 MoE hybrid: its gated delta-net and gated attention blocks are qwen3_next's, but no "
                    "family reads its vision-language config.json yet"),
    "granitemoehybrid": ("Granite 4.0-H hybrid: no Mamba-2 block yet (its SSM state, and Granite's embedding, "
                         "residual and logit multipliers)"),
    "nemotron_h": "Nemotron-H hybrid: no Mamba-2 block yet",
    "gpt_oss": "gpt-oss (attention sinks and a clamped SwiGLU over MXFP4 experts)",
}
WHERE_FAMILIES_LIVE = ("write a family module in src/zootool/arch/families/ and add it to arch/registry.py "
                       "(README: Adding a model)")

Architecture: Any = Annotated[Union[tuple(_FAMILY_CLASSES)], Field(discriminator="family")]


class FamilyRow(BaseModel):
    """One family as ``zoo families`` lists it."""

    model_config = ConfigDict(frozen=True)
    family: str
    model_types: tuple[str, ...]
    transformers_classes: tuple[str, ...]
    summary: str
    module: str


def family_rows() -> list[FamilyRow]:
    """Every registered family, in registration order."""
    return [
        FamilyRow(family=f.family_tag, model_types=f.model_types, transformers_classes=tuple(f.causal_lm.values()),
                  summary=(sys.modules[f.__module__].__doc__ or "").strip().splitlines()[0].rstrip("."),
                  module=f"src/zootool/arch/families/{f.__module__.rsplit('.', 1)[1]}.py")
        for f in _FAMILY_CLASSES
    ]


def known_model_types() -> list[str]:
    return sorted(MODEL_TYPES)


def family_of(model_type: Any, where: str) -> Family:
    """The family that reads ``model_type``; ``where`` names the config in messages."""
    if model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    known = ", ".join(known_model_types())
    if model_type in NOT_YET or _transformers_knows(model_type):
        why = f" ({NOT_YET[model_type]})" if model_type in NOT_YET else ""
        raise NotImplementedFeatureError(
            f"{where}: model_type '{model_type}'{why} is not a family this zoo builds yet",
            f"supported model types: {known}; to add one, {WHERE_FAMILIES_LIVE}",
        )
    raise ConfigError(
        f"{where}: model_type {model_type!r} is not a transformers model type",
        f"pass a decoder's own config.json; the zoo builds: {known}",
    )


def _transformers_knows(model_type: Any) -> bool:
    """Whether transformers has a config class for ``model_type`` (False without transformers)."""
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    except ImportError:
        return False
    return isinstance(model_type, str) and model_type in CONFIG_MAPPING_NAMES


def architecture_of(config: dict[str, Any], where: str) -> ArchConfig:
    """The typed config of a ``config.json`` dict: the one parse, through transformers' own config class.

    Raises ``ConfigError`` (exit 2) for a config transformers or the family refuses, naming ``where``.
    """
    from .hf_config import transformers_config

    family = family_of(config.get("model_type"), where)
    hf = transformers_config(config, where)
    try:
        return family.from_hf(hf)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a buildable {family.family_tag} config: {_first_line(exc)}",
                          "pass the checkpoint's own, unedited config.json") from None


def _first_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        loc = error["loc"] + tuple(getattr(cause, "key", ()))  # a rule across fields names its key
        key = ".".join(str(part).replace("_", "-") for part in loc)
        given = f" (got {error['input']!r})" if key and not isinstance(error.get("input"), dict) else ""
        message = str(cause) if cause is not None else error["msg"]
        return f"{key}: {message}{given}" if key else message
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
