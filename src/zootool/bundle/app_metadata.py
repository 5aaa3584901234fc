"""``metadata.json`` beside the model: what Apple's LanguageBundle loader reads (version 0.2).

One pydantic model serves the builder (which writes it), ``zoo verify`` (which refuses a
bundle that breaks it) and the engine driver (which runs a bundle as the engines do).
Types are strict, as Swift's ``Codable`` is: a string where an array belongs is an error.
Keys the loaders do not read (``source``, ``compression``, ``compilation``) pass through, in
whatever form the writer chose (Apple's exporter: ``compression`` a string or null,
``compilation.date`` an ISO datetime).

``language.tokenizer`` is a Hub id (``Qwen/Qwen3-0.6B``), not a path: the loader reads the
fixed folder ``tokenizer/`` whenever the bundle embeds one, and only otherwise fetches that
id from the Hub (``embedded_tokenizer``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import VerifyError

METADATA_FILE = "metadata.json"
METADATA_VERSION = "0.2"
MAIN_ROLE = "main"  # the function_map role the engines run
TOKENIZER_DIR = "tokenizer"  # the fixed folder LanguageBundle's tokenizerPath reads
StateKind = Literal["kv_cache", "sliding_cache", "fixed"]


class _Passthrough(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Assets(_Passthrough):
    main: str = Field(min_length=1)
    format: Literal["aimodel", "mlpackage"] = "aimodel"

    @model_validator(mode="after")
    def _one_asset(self) -> Assets:
        if "chunks" in (self.model_extra or {}):
            raise ValueError("layer-range chunks cannot be chained by any engine: a bundle has one asset")
        return self


class LanguageConfig(_Passthrough):
    tokenizer: str = Field(min_length=1)
    vocab_size: int = Field(gt=0)
    max_context_length: int = Field(gt=0)
    embedded_tokenizer: bool = True
    function_map: dict[str, list[str]] | None = None
    states: dict[str, StateKind] | None = None

    @field_validator("function_map")
    @classmethod
    def _named_functions(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is not None and any(not names for names in value.values()):
            raise ValueError("every role maps to a non-empty array of function names")
        return value


class AppMetadata(_Passthrough):
    metadata_version: Literal["0.2"]
    kind: Literal["llm", "vlm"]
    name: str = Field(min_length=1)
    assets: Assets
    language: LanguageConfig

    @property
    def main_function(self) -> str:
        """The graph the engines run: the first name of ``function_map["main"]``."""
        names = (self.language.function_map or {}).get(MAIN_ROLE)
        return names[0] if names else MAIN_ROLE


def read_app_metadata(model_dir: Path) -> AppMetadata:
    """The model folder's ``metadata.json``; a broken one is a :class:`VerifyError` naming the rule."""
    path = Path(model_dir) / METADATA_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VerifyError(f"{path}: missing or not JSON ({type(exc).__name__})", "rebuild the bundle") from None
    try:
        return AppMetadata.model_validate(data)
    except ValidationError as exc:
        raise VerifyError(f"{path}: {'; '.join(metadata_problems(exc))}", "rebuild the bundle") from None


def metadata_problems(exc: ValidationError) -> list[str]:
    """One sentence per broken rule, with the dotted key, e.g. ``language.function_map.main: ...``."""
    return [f"{'.'.join(str(p) for p in error['loc']) or 'metadata'}: {error['msg']}" for error in exc.errors()]



def embedded_tokenizer(model_dir: Path, metadata: AppMetadata) -> Path | None:
    """The folder LanguageBundle loads the tokenizer from, decided as its ``tokenizerPath`` decides.

    ``<model_dir>/tokenizer/`` when ``embedded_tokenizer`` (default true) and it holds
    ``tokenizer.json``; ``None`` when the loader falls back to
    ``AutoTokenizer.from(pretrained: language.tokenizer)``, a Hub download.
    """
    folder = Path(model_dir) / TOKENIZER_DIR
    if metadata.language.embedded_tokenizer and (folder / "tokenizer.json").is_file():
        return folder
    return None
