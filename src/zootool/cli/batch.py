"""The CLI side of zoo-wide runs (``zoo status``, ``zoo build`` / ``zoo publish`` over many rows).

Selection and execution are core (``selection``, ``batch``); this module prints the views and
raises the command's exit code, the highest of its rows.
"""

from __future__ import annotations

from typing import Any

import typer

from ..config.zoo_data import Zoo

GLOB = set("*?[")


def one_row(models: list[str] | None, targets: list[str] | None, zoo_wide: bool) -> tuple[str, str] | None:
    """(model, target) when the command names exactly one of each, without globs; else None (a zoo-wide run)."""
    if zoo_wide or not models or not targets or len(models) != 1 or len(targets) != 1:
        return None
    if GLOB & set(models[0] + targets[0]):
        return None
    return models[0], targets[0]


def check_executor(executor: str | None, **ray_only: Any) -> None:
    """--executor is local or ray; the Ray options need --executor ray."""
    from ..errors import ConfigError

    if executor not in (None, "local", "ray"):
        raise ConfigError(f"--executor {executor}: not an executor", "use --executor local or --executor ray")
    given = [name.replace("_", "-") for name, value in ray_only.items() if value is not None]
    if given and executor != "ray":
        raise ConfigError(f"--{given[0]} applies to --executor ray", "add --executor ray, or drop the option")


def publish_request(publish: bool, *, gate: bool, record: bool, endpoint: str | None, private: bool | None):
    """What ``zoo build --publish`` asks of each row's worker; None without --publish.

    The publish is recorded in zoo/records/ as ``zoo publish`` records it: with --record, or
    when publishing to the public Hub.
    """
    import os

    from ..errors import ConfigError
    from ..build.jobs import PublishRequest

    if not publish:
        given = [name for name, value in (("endpoint", endpoint), ("private", private)) if value is not None]
        if given:
            raise ConfigError(f"--{given[0]} applies to zoo build --publish", "add --publish, or drop the option")
        return None
    if not gate:
        raise ConfigError("--publish needs the quality gate: only gated bundles are published",
                          "drop --no-gate (zoo publish refuses an ungated bundle too)")
    from .publish import PUBLIC_HUB

    public = (endpoint or os.environ.get("HF_ENDPOINT")) in (None, PUBLIC_HUB)
    return PublishRequest(endpoint=endpoint, private=bool(private), record=record or public)


def status_command(zoo: Zoo, models: list[str], targets: list[str], as_json: bool) -> None:
    from .batch_view import status_table
    from .output import console, emit_json, report
    from ..errors import ConfigError
    from ..build.selection import select

    selection = select(zoo, _display(zoo), models, targets, everything=True, changed=False)
    rows = [row.status for row in selection.rows]
    if as_json:
        emit_json([row.model_dump(mode="json") for row in rows])
    else:
        console().print(status_table(rows))
    for problem in selection.errors:
        report(f"{problem.model}{' --target ' + problem.target if problem.target else ''}: {problem.message}",
                problem.hint)
    if selection.errors:
        raise ConfigError(f"{len(selection.errors)} recipe(s) or target(s) do not resolve (listed above)")


def build_many(zoo: Zoo, models: list[str], targets: list[str], everything: bool, changed: bool, dry_run: bool,
               options: Any, as_json: bool) -> None:
    from ..build.batch import build_rows
    from ..build.selection import select

    selection = select(zoo, _display(zoo), models, targets, everything=everything, changed=changed)
    if dry_run:
        _dry_run(selection, as_json)
        return
    with _progress(as_json, "build") as progress:
        results = build_rows(zoo, selection, options, progress)
    _finish(results, as_json, "zoo build")


def publish_many(zoo: Zoo, models: list[str], targets: list[str], everything: bool, changed: bool, as_json: bool,
                 **publish: Any) -> None:
    from ..build.batch import publish_rows
    from ..build.selection import select

    selection = select(zoo, _display(zoo), models, targets, everything=everything, changed=changed, step="publish")
    with _progress(as_json, "publish") as progress:
        results = publish_rows(zoo, selection, progress, **publish)
    _finish(results, as_json, "zoo publish")


def _progress(as_json: bool, verb: str):
    from rich.console import Console

    from .batch_view import BatchProgress
    from .output import console

    err = console(stderr=True)
    return BatchProgress(Console(stderr=True, markup=False, emoji=False, force_terminal=err.is_terminal),
                         enabled=not as_json, verb=verb)


def _dry_run(selection, as_json: bool) -> None:
    from .batch_view import status_table
    from .output import console, emit_json, say

    rows = [row.status for row in selection.rows]
    if as_json:
        emit_json({"rows": [row.model_dump(mode="json") for row in rows],
                   "skipped": [row.status.model_dump(mode="json") for row in selection.skipped],
                   "errors": [error.model_dump() for error in selection.errors]})
        return
    if not rows:
        say("nothing to build: every selected row is built from its current plan")
    else:
        console().print(status_table(rows))
    for row in selection.skipped:
        say(f"skipped {row.status.model} --target {row.status.target}: {row.status.state}")


def _finish(results, as_json: bool, title: str) -> None:
    from .batch_view import summary_table
    from .output import console, emit_json, say
    from ..build.jobs import worst

    if as_json:
        emit_json([result.model_dump(mode="json") for result in results])
    elif results:
        console().print(summary_table(results, title))
    else:
        say(f"{title}: nothing to do (every selected row is up to date)")
    code = worst(results)
    if code:
        raise typer.Exit(code)


def _display(zoo: Zoo):
    from ..paths import relative

    return lambda path: relative(path, zoo.root)
