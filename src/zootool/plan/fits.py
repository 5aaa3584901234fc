"""A plan over its platform's budget: refused, naming the schemes that would fit."""

from __future__ import annotations

from ..backends.registry import backend, scheme_refusal
from ..config.recipe import Recipe
from ..config.zoo_data import Kernel, Zoo
from ..errors import BudgetExceededError
from ..units import gb
from .estimate import estimate
from .resolve import BuildPlan, model_kind


def require_fits(plan: BuildPlan, recipe: Recipe, zoo: Zoo) -> None:
    """Raise ``BudgetExceededError`` for a plan over budget, naming schemes that would fit."""
    if plan.budget.fits:
        return
    fitting = _fitting_schemes(plan, recipe, zoo)
    hint = (
        "schemes that fit: " + ", ".join(f"{s} (~{gb(b)})" for s, b in fitting)
        if fitting else "no scheme in zoo/schemes.toml fits; choose a larger platform"
    )
    raise BudgetExceededError(
        f"{plan.recipe_id} --target {plan.target}: estimated {gb(plan.budget.estimated_bytes)} with "
        f"'{plan.scheme_id}' exceeds the {plan.platform_id} budget of {gb(plan.budget.budget_bytes)} "
        f"({plan.platform.budget_reason})",
        hint + " (e.g. --quant " + fitting[0][0] + ")" if fitting else hint,
    )


def _fitting_schemes(plan: BuildPlan, recipe: Recipe, zoo: Zoo) -> list[tuple[str, int]]:
    fitting = []
    for scheme_id, scheme in zoo.schemes.items():
        kernel = _kernel_for(plan, scheme_id, recipe, zoo)
        if plan.backend not in scheme.backends or kernel is None or scheme_refusal(plan.backend, scheme):
            continue  # `--quant` with this scheme would be refused on this target
        program = backend(plan.backend).program_bytes(recipe.architecture.layout(), scheme)
        size = estimate(recipe.architecture.tensors(), scheme, kernel, program).model_bytes
        if size <= plan.budget.budget_bytes:
            fitting.append((scheme_id, size))
    return sorted(fitting, key=lambda pair: -pair[1])


def _kernel_for(plan: BuildPlan, scheme_id: str, recipe: Recipe, zoo: Zoo) -> Kernel | None:
    """The plan's kernel if it takes ``scheme_id``, else the first one that applies to this target."""
    kind = model_kind(recipe.architecture)
    candidates = [plan.kernel, *zoo.kernels.values()]
    return next((k for k in candidates if scheme_id in k.schemes and plan.backend in k.backends
                 and k.needs == kind), None)
