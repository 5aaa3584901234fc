"""One ``zoo list`` row per model x target: what the list shows of a plan, and its ``--json`` form.

A stdlib dataclass, not a pydantic model: ``zoo list`` answers from cached rows without
importing pydantic's model machinery, which alone costs about a third of the start-up
floor the command is measured against (bench/cli_startup.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..plan.resolve import BuildPlan


# Field annotations are strings here (postponed evaluation); these are the ones ListRow uses.
_TYPES = {"str": str, "int": int, "bool": bool}


@dataclass(frozen=True)
class ListRow:
    """The fields of a plan that ``zoo list`` prints, named as in ``zoo list --json``."""

    model: str
    target: str
    platform: str
    scheme: str
    kernel: str
    params: int
    estimated_bytes: int
    budget_bytes: int
    fits: bool
    plan_hash: str

    @classmethod
    def from_plan(cls, plan: BuildPlan) -> ListRow:
        return cls(
            model=plan.recipe_id,
            target=plan.target,
            platform=plan.platform_id,
            scheme=plan.scheme_id,
            kernel=plan.kernel_id,
            params=plan.estimate.params,
            estimated_bytes=plan.budget.estimated_bytes,
            budget_bytes=plan.budget.budget_bytes,
            fits=plan.budget.fits,
            plan_hash=plan.plan_hash,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListRow:
        """A row read back from the cache; raises ``ValueError`` unless it has exactly these fields."""
        types = {f.name: _TYPES[f.type] for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != set(types):
            raise ValueError(f"not a list row: {data!r}")
        wrong = [name for name, kind in types.items() if type(data[name]) is not kind]
        if wrong:
            raise ValueError(f"list row field {wrong[0]} is not a {types[wrong[0]].__name__}: {data!r}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
