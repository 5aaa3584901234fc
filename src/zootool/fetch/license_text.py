"""The license text a bundle ships: the upstream's own file, else, for a standard license, the zoo's copy.

Many Hub repos declare a standard license (``license: apache-2.0`` or ``mit`` in the card) and
ship no LICENSE file. For such a license the zoo holds the standard text
(``zoo/licenses/<id>.txt``) and ships that copy, saying so in the file itself, the card and the
manifest. A custom license (LFM Open License, Gemma, Llama) has no standard text: its bundle
ships the upstream's own file or is not built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..config.zoo_data import zoo_license_text
from ..errors import ConfigError

ZOO_COPY_NOTE = (
    "{name}: the zoo's copy of its standard text.\n"
    "{upstream} declares this license and ships no license file, so zootool ships this copy of the text.\n"
    "The licensed work and its copyright are its authors' ({upstream}), not zootool's.\n\n"
)


class LicenseText(BaseModel):
    """Where a bundle's LICENSE comes from: the checkpoint's own file, or the zoo's copy of a standard text."""

    model_config = ConfigDict(frozen=True)
    origin: Literal["upstream", "zoo"]
    path: Path


def license_text(plan, checkpoint: Path, license_dir: Path) -> LicenseText:
    """The text to ship for ``plan.license``; a custom license without the upstream's file is refused (exit 2)."""
    upstream = checkpoint / plan.license.text_file
    if upstream.is_file() and upstream.read_text(errors="replace").strip():
        return LicenseText(origin="upstream", path=upstream)
    standard = zoo_license_text(license_dir, plan.license_id)
    if standard is not None:
        return LicenseText(origin="zoo", path=standard)
    raise ConfigError(
        f"{upstream}: the license text ({plan.license.name}) is missing, and '{plan.license_id}' is a custom "
        "license: the zoo holds no standard text of it",
        f"zootool ships the upstream's own text of a custom license: put the upstream's {plan.license.text_file} "
        "in the checkpoint folder (for a standard license, zoo/licenses/<id>.txt would stand in)",
    )


def write_license(plan, text: LicenseText, dest: Path) -> None:
    """``dest`` (the bundle's LICENSE): the upstream file as it is, or the zoo's copy under a note saying so."""
    body = text.path.read_text()
    if text.origin == "zoo":
        upstream = getattr(plan.source, "hub", None) or "The checkpoint"
        body = ZOO_COPY_NOTE.format(name=plan.license.name, upstream=upstream) + body
    dest.write_text(body)


def card_license_source(plan, text: LicenseText, checkpoint_note: str | None = None) -> str:
    """What the card says the LICENSE file is a copy of; ``checkpoint_note``: where a converted
    checkpoint's own LICENSE came from (``fetch.provenance``), when not from the upstream repo."""
    if text.origin == "upstream":
        return checkpoint_note or plan.license.text_source
    return (f"the zoo's copy of the standard text (zoo/licenses/{text.path.name}): the upstream declares "
            "this license and ships no license file")
