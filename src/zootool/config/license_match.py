"""Map what an upstream repo declares about its license to a license id of ``zoo/licenses/``.

The card's front matter (``license:``, with ``license_name:`` when it is ``other``) decides;
without it, a LICENSE file whose first words are a zoo license's ``text-heading``. Nothing is
inferred beyond that: an unknown, ambiguous, contradictory or missing license is an error.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError
from ..fetch.upstream import Upstream
from .zoo_data import HOW_TO_ADD_LICENSE as HOW_TO_ADD
from .zoo_data import unknown_license_hint

class LicenseChoice(BaseModel):
    """The zoo license id for an upstream, and the evidence it was read from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    license_id: str
    evidence: str


def choose_license(upstream: Upstream, licenses: dict[str, Any], given: str | None) -> LicenseChoice:
    """The zoo license for ``upstream``; ``given`` (``--license``) must agree with what it declares."""
    if given is not None and given not in licenses:
        raise ConfigError(f"unknown license '{given}'", unknown_license_hint(given, licenses))
    from_card = _from_card(upstream, licenses)
    from_text = _from_text(upstream, licenses)
    if from_card and from_text and from_card.license_id != from_text.license_id:
        raise ConfigError(
            f"{upstream.label}: {from_card.evidence} says '{from_card.license_id}' but {from_text.evidence} "
            f"reads as '{from_text.license_id}'",
            "the upstream contradicts itself; settle it with its authors before adding the model",
        )
    found = from_card or from_text
    if found is None:
        return _undeclared(upstream, licenses, given)
    if given is not None and given != found.license_id:
        raise ConfigError(f"--license {given} disagrees with {upstream.label}: {found.evidence} says "
                          f"'{found.license_id}'", "drop --license; the upstream declaration decides")
    return found


def _from_card(upstream: Upstream, licenses: dict[str, Any]) -> LicenseChoice | None:
    card = upstream.card or {}
    declared = card.get("license")
    if declared is None:
        return None
    if not isinstance(declared, str):
        raise ConfigError(f"{upstream.label}: README.md license is {declared!r}, not one license id",
                          "a model with several licenses needs a person's decision: pass --config and --license")
    if declared == "other":
        return _other(upstream, licenses, card.get("license_name"))
    matches = sorted(i for i, lic in licenses.items() if lic.hub_license == declared and lic.hub_license != "other")
    return _one(matches, upstream, f"README.md license: {declared}", declared)


def _other(upstream: Upstream, licenses: dict[str, Any], name: Any) -> LicenseChoice:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{upstream.label}: README.md says license: other without a license_name",
                          "zootool does not guess which license that is: pass --config and --license")
    matches = [i for i in licenses if i.casefold() == name.casefold()]
    return _one(matches, upstream, f"README.md license: other, license_name: {name}", name)


def _one(matches: list[str], upstream: Upstream, evidence: str, declared: str) -> LicenseChoice:
    if len(matches) == 1:
        return LicenseChoice(license_id=matches[0], evidence=evidence)
    if matches:
        raise ConfigError(f"{upstream.label}: {evidence} fits several zoo licenses ({', '.join(matches)})",
                          "give each zoo/licenses/*.toml a distinct hub-license")
    raise ConfigError(f"{upstream.label}: {evidence}, a license zoo/licenses/ does not know",
                      HOW_TO_ADD.format(id=_file_stem(declared)))


def _from_text(upstream: Upstream, licenses: dict[str, Any]) -> LicenseChoice | None:
    if not upstream.license_text:
        return None
    opening = _words(upstream.license_text[:400])
    matches = sorted(
        i for i, lic in licenses.items() if lic.text_heading and opening.startswith(_words(lic.text_heading))
    )
    if len(matches) != 1:
        return None  # unrecognised (or ambiguous) text is no evidence either way
    return LicenseChoice(license_id=matches[0], evidence=f"the {upstream.license_file} file")


def _undeclared(upstream: Upstream, licenses: dict[str, Any], given: str | None) -> LicenseChoice:
    if upstream.license_file is None:
        raise ConfigError(
            f"{upstream.label}: declares no license (no license: in README.md front matter, no LICENSE file)",
            "zootool refuses a model without a license rather than assume one: ask the upstream to declare it "
            "(license: in README.md, or a LICENSE file), then run the same command again",
        )
    if given is not None:  # a person read the file and named it
        return LicenseChoice(license_id=given, evidence=f"--license, for the {upstream.license_file} file")
    raise ConfigError(
        f"{upstream.label}: the card declares no license and its {upstream.license_file} file is not one the zoo "
        "recognises",
        f"read it, then pass --license ID (known: {', '.join(sorted(licenses))}); for a license the zoo does not "
        "have yet, add zoo/licenses/ID.toml with a text-heading (see zoo/licenses/apache-2.0.toml)",
    )


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w.]+", text.casefold()))


def _file_stem(declared: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", declared.casefold()).strip("-.") or "the-license"
