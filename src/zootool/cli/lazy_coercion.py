"""Typer's own value coercion, with its pydantic adapter built only for a value to coerce.

Typer (0.26+) coerces each parsed parameter through a ``RuntimeParam`` that it builds on the
parameter's first use, and building one imports ``typer._adapters`` and with it pydantic's
TypeAdapter and schema machinery. It builds it even for a parameter that was not given (value
None, which ``RuntimeParam.coerce`` then returns untouched without the adapter): every ``--help``
option of every command, and ``--root``. That import alone is most of what a bare Typer app
costs above ``import typer, rich, pydantic`` (bench/cli_startup.py). Here each parameter starts
with a ``RuntimeParam`` of Typer's whose None and multi-value rules are Typer's (inherited), and
that builds Typer's real one when a value arrives, so every given value is coerced by Typer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import _TyperParameter


@dataclass(frozen=True)
class BuiltOnFirstValue(RuntimeParam):
    """Stands in for Typer's runtime parameter until there is a value to coerce."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
        built = build_runtime_param(self.descriptor)
        param._runtime_param = built
        return built._coerce_value(value, param=param, ctx=ctx)


def defer_coercion(params: Iterable[Any]) -> None:
    """Give each Typer parameter not yet coerced a stand-in that builds Typer's adapter on use."""
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            descriptor = param.type_descriptor
            param._runtime_param = BuiltOnFirstValue(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor
            )
