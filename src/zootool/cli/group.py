"""The ``zoo`` command group: the one error boundary between the core's typed errors and the exit code."""

import os
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import ZooError
from .lazy_coercion import defer_coercion
from .output import emit_error_json, report, start_command

JSON_FLAG = "--json"


class ZooGroup(TyperGroup):
    """The one error boundary: a ``ZooError`` becomes its message, hint and exit code.

    It sits inside the Typer app (not around it) so that in-process runners such as
    ``typer.testing.CliRunner`` take the same exit path as the ``zoo`` command.
    Parameters build Typer's pydantic coercion only for a value given (see ``lazy_coercion``).
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta[JSON_FLAG] = JSON_FLAG in args  # the command's arguments too: its error then goes out as JSON
        defer_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            defer_coercion(command.get_params(ctx))
        return name, command, rest

    def invoke(self, ctx: typer.Context) -> Any:
        as_json = ctx.meta.get(JSON_FLAG, False)
        start_command()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Typer's own control flow: help, usage errors, explicit exits
        except BrokenPipeError:
            raise  # the reader of a pipe quit (zoo list | head): Typer exits 1 without a word, as on --help
        except ZooError as exc:
            _unless_debugging(exc)
            _fail(exc.message, exc.hint, exc.exit_code, as_json)
        except Exception as exc:  # noqa: BLE001 - last resort: no traceback unless asked
            _unless_debugging(exc)
            _fail(f"unexpected {type(exc).__name__}: {exc}", "run again with ZOO_DEBUG=1 for a traceback", 1, as_json)


def _fail(message: str, hint: str | None, exit_code: int, as_json: bool) -> None:
    """The error on stderr, and with ``--json`` as the JSON document on stdout too; then the exit code."""
    report(message, hint)
    if as_json:
        emit_error_json(message, hint, exit_code)
    raise typer.Exit(exit_code) from None


def _unless_debugging(exc: Exception) -> None:
    if os.environ.get("ZOO_DEBUG") == "1":
        raise exc
