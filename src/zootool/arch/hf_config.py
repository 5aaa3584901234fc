"""A ``config.json`` dict read by transformers' own config class (defaults, legacy keys, derived settings)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def transformers_config(config: dict[str, Any], where: str) -> Any:
    """The transformers ``PreTrainedConfig`` of ``config``; ``ConfigError`` naming ``where`` if it refuses."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    settings = dict(config)
    model_type = settings.pop("model_type", None)
    try:
        with _quiet():
            return AutoConfig.for_model(model_type, **settings)
    except (TypeError, ValueError, KeyError, StrictDataclassError) as exc:
        raise ConfigError(f"{where}: transformers refuses this {model_type} config: {exc}",
                          "pass the checkpoint's own, unedited config.json") from None


def _quiet() -> Any:
    """transformers logs config warnings (e.g. token ids outside a toy vocabulary) that are not ours to show."""
    from transformers.utils import logging

    class Quiet:
        def __enter__(self) -> None:
            self.level = logging.get_verbosity()
            logging.set_verbosity_error()

        def __exit__(self, *exc: object) -> None:
            logging.set_verbosity(self.level)

    return Quiet()
