"""RoPE settings as a recipe holds them and transformers' ``rope_parameters`` spell them, torch-free."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..config.schema_base import Array, Count, FieldError, Strict
from ..errors import NotImplementedFeatureError

ScalingType = Literal["linear", "llama3", "yarn", "longrope"]
SUPPORTED = ("default", "linear", "llama3", "yarn", "longrope")
_NEEDS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
    "longrope": ("short_factor", "long_factor", "original_max_position_embeddings"),
}


class RopeScaling(Strict):
    """How RoPE frequencies are scaled for a longer context (transformers' rope types)."""

    rope_type: ScalingType
    # transformers' RoPE validation: a scaling factor stretches positions, never shrinks them.
    factor: float | None = Field(default=None, ge=1)
    low_freq_factor: float | None = Field(default=None, gt=0)
    high_freq_factor: float | None = Field(default=None, gt=0)
    original_max_position_embeddings: Count | None = None
    attention_factor: float | None = Field(default=None, gt=0)
    beta_fast: float | None = Field(default=None, gt=0)
    beta_slow: float | None = Field(default=None, gt=0)
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool | None = None
    short_factor: Array[float] | None = None
    long_factor: Array[float] | None = None

    @model_validator(mode="after")
    def _complete(self) -> RopeScaling:
        missing = [key for key in _NEEDS[self.rope_type] if getattr(self, key) is None]
        if missing:
            keys = ", ".join(k.replace("_", "-") for k in missing)
            raise ValueError(f"{self.rope_type} rope scaling needs {keys}")
        low, high = self.low_freq_factor, self.high_freq_factor
        if low is not None and high is not None and high <= low:
            raise FieldError("high-freq-factor", f"must be greater than low-freq-factor ({low})")
        return self

    def hf(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True) | {
            key: list(value) for key in ("short_factor", "long_factor") if (value := getattr(self, key)) is not None
        }


def rope_from_hf(parameters: Any, where: str = "rope_parameters") -> tuple[float, RopeScaling | None]:
    """``(theta, scaling or None)`` from one transformers ``rope_parameters`` dict."""
    params = dict(parameters or {})
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in SUPPORTED:
        raise NotImplementedFeatureError(
            f"{where}: RoPE type {rope_type!r} is not supported", f"supported RoPE types: {', '.join(SUPPORTED)}"
        )
    theta = float(params["rope_theta"])
    if rope_type == "default":
        return theta, None
    keys = set(RopeScaling.model_fields) - {"rope_type"}
    scaling = {key: params[key] for key in keys if params.get(key) is not None}
    return theta, RopeScaling.model_validate({"rope_type": rope_type, **scaling})


def rope_to_hf(theta: float, scaling: RopeScaling | None, **extra: Any) -> dict[str, Any]:
    """One transformers 5 ``rope_parameters`` dict."""
    base = {"rope_type": "default"} if scaling is None else scaling.hf()
    return {**base, "rope_theta": theta, **extra}
