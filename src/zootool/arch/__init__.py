"""Architecture families known to the zoo, keyed by recipe ``family`` / ``model_type``."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from .lfm2_moe.schema import Lfm2MoeArch
from .llama.schema import LlamaArch

FAMILIES: dict[str, Any] = {cls.family_tag: cls for cls in (Lfm2MoeArch, LlamaArch)}

_MEMBERS = tuple(FAMILIES.values())
# A discriminated union needs two members; with one family the class itself is the type.
Architecture: Any = (
    Annotated[Union[_MEMBERS], Field(discriminator="family")] if len(_MEMBERS) > 1 else _MEMBERS[0]
)
