"""The ``zoo`` command: thin typer commands over the core; the only module that exits."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import EXIT_CODES, ZooError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Build, gate and publish Core AI model bundles from declarative recipes.",
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
)
out = Console()
err = Console(stderr=True)
_options: dict[str, Any] = {"root": None}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Target name from the recipe's [targets].")]


def _version(value: bool) -> None:
    if value:
        out.print(f"zootool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    root: Annotated[Optional[Path], typer.Option(help="Zoo checkout (default: $ZOO_ROOT or search upward).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    _options["root"] = root


def zoo():
    from .zoo_data import Zoo, check_root, find_root

    root = _options["root"]
    return Zoo(check_root(root.resolve(), "--root") if root else find_root())


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def overrides(**values: Any):
    from .recipe import Settings

    given = {k: v for k, v in values.items() if v is not None}
    return Settings(**given) if given else None


@app.command("list")
def list_models(as_json: JsonFlag = False) -> None:
    """Every model x target with its size estimate against the platform budget."""
    from .errors import ConfigError
    from .registry import resolve_all
    from .render import list_table, plan_row

    z = zoo()
    plans, errors = resolve_all(z, lambda path: _rel(path, z))
    if as_json:
        emit_json([plan_row(p) for p in plans])
    else:
        out.print(list_table(plans))
    for problem in errors[:-1]:
        _report(problem.message, problem.hint)
    if errors:
        raise ConfigError(errors[-1].message, errors[-1].hint)


@app.command()
def show(model: str, as_json: JsonFlag = False) -> None:
    """A recipe: source, license, architecture and every target's resolved plan."""
    from .plan import resolve
    from .registry import get
    from .render import list_table

    z = zoo()
    recipe, path = get(z, model)
    plans = [resolve(recipe, t, z, recipe_file=_rel(path, z)) for t in recipe.targets]
    if as_json:
        emit_json({"recipe": recipe.model_dump(mode="json", by_alias=True), "plans": [p.summary() for p in plans]})
        return
    out.print(f"[bold]{recipe.model.name}[/] ({recipe.id})  {_rel(path, z)}")
    out.print(recipe.model.description)
    out.print(f"family: {recipe.architecture.family}   license: {recipe.model.license}")
    out.print(list_table(plans))


@app.command()
def plan(
    model: str,
    target: TargetOpt,
    quant: Annotated[Optional[str], typer.Option(help="Override the quant scheme.")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="Override the expert kernel.")] = None,
    context_length: Annotated[Optional[int], typer.Option(help="Override the context length.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Resolve MODEL for a target into a build plan (no disk, no network); refuse over-budget plans."""
    from .plan import require_fits, resolve
    from .registry import get
    from .render import groups_table, plan_table

    z = zoo()
    recipe, path = get(z, model)
    cli = overrides(quant=quant, kernel=kernel, context_length=context_length)
    resolved = resolve(recipe, target, z, recipe_file=_rel(path, z), overrides=cli)
    require_fits(resolved, recipe, z)
    if as_json:
        emit_json(resolved.summary())
        return
    out.print(plan_table(resolved))
    out.print(groups_table(resolved))


@app.command()
def schema() -> None:
    """Print the JSON Schema of a recipe, for editor validation of recipes/*.toml."""
    from .recipe import Recipe

    emit_json(Recipe.model_json_schema(by_alias=True))


@app.command()
def new(
    hub_id: Annotated[Optional[str], typer.Argument(
        help="Upstream model on the Hub, Org/Model: read at a pinned commit.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Offline: the upstream model's config.json.")] = None,
    license: Annotated[Optional[str], typer.Option(help="License id from zoo/licenses/: required with --config; "
                                                   "with a Hub id it must agree with the upstream.")] = None,
    model_id: Annotated[Optional[str], typer.Option("--id", help="Model id (default: from the Hub repo name).")] = None,
    hub: Annotated[Optional[str], typer.Option(help="With --config: the upstream Hub repo, namespace/name.")] = None,
    revision: Annotated[Optional[str], typer.Option(
        help="Branch, tag or sha to pin (Hub id: resolved to its commit, default main).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Hub endpoint (default: $HF_ENDPOINT or the Hub).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Scaffold recipes/<id>.toml for a new model of a known family; refuses to overwrite."""
    from .new_cli import new_command

    z = zoo()
    result = new_command(z, hub_id, config=config, license_id=license, model_id=model_id, hub=hub,
                         revision=revision, endpoint=endpoint)
    if as_json:
        emit_json(result)
        return
    if "revision" in result:
        out.print(f"read {result['hub']} at commit {result['revision']} (license {result['license']}, "
                  f"from {result['license_from']})")
    out.print(f"wrote {result['path']}; next: zoo plan {result['id']} --target mac")


@app.command()
def build(
    model: str,
    target: TargetOpt,
    weights: Annotated[Optional[Path], typer.Option(help="Local checkpoint folder instead of the recipe's source.")] = None,
    revision: Annotated[Optional[str], typer.Option(help="Upstream commit sha (when the recipe pins none).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if an identical bundle exists.")] = False,
    no_gate: Annotated[bool, typer.Option("--no-gate", help="Skip the quality gate; the card says 'not gated'.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Write the build into zoo/records/ for the catalog "
                                         "(zoo publish always records).")] = False,
    quant: Annotated[Optional[str], typer.Option(help="Override the quant scheme.")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="Override the expert kernel.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build MODEL for a target into build/<model>/<target>/: convert, quantize, gate, card, manifest."""
    if dry_run:
        plan(model, target, quant=quant, kernel=kernel, context_length=None, as_json=as_json)
        return
    from .builder import BuildOptions, Stages, build as run_build
    from .plan import require_fits, resolve
    from .progress import StageProgress
    from .registry import get
    from .render import build_summary

    z = zoo()
    recipe, path = get(z, model)
    resolved = resolve(recipe, target, z, recipe_file=_rel(path, z),
                       overrides=overrides(quant=quant, kernel=kernel), revision=revision)
    require_fits(resolved, recipe, z)
    options = BuildOptions(weights=weights, revision=revision, force=force, gate=not no_gate, record=record)
    from .quiet import terminal_stream

    console = Console(file=terminal_stream(), force_terminal=err.is_terminal)
    with StageProgress(console, enabled=not as_json) as observer:
        result = run_build(resolved, z, options, Stages(observer))
    summary = build_summary(result)
    emit_json(summary) if as_json else out.print(summary_text(summary))


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory (build/<model>/<target>).")],
    as_json: JsonFlag = False,
) -> None:
    """Re-check a bundle's manifest hashes, contents, license, card, budget and gate record."""
    from .errors import VerifyError
    from .verify import require, verify_bundle

    if not bundle.is_dir():
        raise VerifyError(f"{bundle}: not a directory", "pass a bundle folder, e.g. build/tiny-lfm2-moe/mac")
    report = verify_bundle(bundle)
    if as_json:
        emit_json({"bundle": str(bundle), "ok": report.ok, "publishable": report.publishable,
                   "problems": report.problems})
    require(report)
    if not as_json:
        out.print(f"verified {bundle}: {len(report.manifest.get('files', []))} files match the manifest; "
                  f"publishable: {'yes' if report.publishable else 'no'}")


@app.command()
def run(
    bundle: Annotated[Path, typer.Argument(help="A bundle (build/<model>/<target>) or its model folder.")],
    prompt: Annotated[str, typer.Option(help="The user message; the bundle's chat template wraps it.")],
    max_tokens: Annotated[int, typer.Option(min=1, help="Stop after this many new tokens.")] = 64,
    greedy: Annotated[bool, typer.Option("--greedy", help="Take the top token (default: sample as generation_config.json says).")] = False,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Generate text from a bundle through the engine driver, as an app's engine would run it."""
    from .generate import generate

    result = generate(bundle, prompt, max_tokens, greedy, seed)
    if as_json:
        emit_json(result.model_dump())
        return
    out.print(result.text, markup=False, highlight=False)
    err.print(f"({result.prompt_tokens} prompt tokens, {len(result.generated_tokens)} generated, "
              f"stopped by {result.stopped_by})", markup=False)


@app.command()
def gate(
    model: Annotated[str, typer.Argument(help="Model id, or with --replay a bundle directory.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target name.")] = None,
    replay: Annotated[Optional[Path], typer.Option(help="Re-run only the candidate against this gate.json.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local checkpoint folder.")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Where to write the new transcript.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the fp32-oracle margin gate against a built bundle (or replay a published transcript)."""
    from .gate_cli import run_gate_command

    summary = run_gate_command(zoo(), model, target, replay, weights, out_path)
    emit_json(summary) if as_json else out.print(f"gate: {summary['line']} -> {summary['transcript']}")
    if not summary["passed"]:
        from .errors import GateFailedError

        raise GateFailedError(f"gate failed: {summary['line']}", "see the transcript for the flipped positions")


@app.command()
def publish(
    model: str,
    target: TargetOpt,
    repo: Annotated[Optional[str], typer.Option(help="Hub repo namespace/name (default: the recipe's publish.repo).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[Optional[str], typer.Option(help="Branch to commit to (default: main).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Hub endpoint, e.g. a local test server.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded; no network.")] = False,
    record: Annotated[Optional[bool], typer.Option(
        "--record/--no-record", help="Write zoo/records/ (default: only when publishing to the public Hub).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish a built, verified, gated bundle to the Hugging Face Hub in one commit, then tag it."""
    from .publish_cli import publish_command

    result = publish_command(zoo(), model, target, repo=repo, private=private, revision=revision,
                             endpoint=endpoint, dry_run=dry_run, record=record)
    if as_json:
        emit_json(result)
    elif dry_run:
        out.print(f"would publish {len(result['files'])} files ({result['total_bytes']:,} bytes) to {result['repo']}")
        for entry in result["files"]:
            out.print(f"  {entry['path']}  {entry['size']:,}")
        out.print(f"card front matter: {result['card_front_matter']}")
    elif result["commit_sha"]:
        out.print(f"published {result['repo_url']} commit {result['commit_sha']} tag {result['tag']} "
                  f"({len(result['files_uploaded'])} files uploaded, {len(result['files_deleted'])} deleted)")
    else:
        out.print(f"{result['repo_url']} already has this bundle: no commit made (tag {result['tag']})")


@app.command("index")
def index(
    check: Annotated[bool, typer.Option("--check", help="Fail (exit 2) if a generated catalog file is stale.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate zoo/README.md, zoo/index.json and zoo/<id>.md from recipes and build records."""
    from .index_cli import index_command

    summary = index_command(zoo(), check)
    if as_json:
        emit_json(summary)
        return
    changed = ", ".join(summary["changed"]) or "nothing changed"
    out.print(f"catalog up to date ({len(summary['files'])} files)" if check else f"zoo index: {changed}")


def summary_text(summary: dict[str, Any]) -> str:
    state = "reused (identical plan and inputs)" if summary["cached"] else "built"
    return (
        f"{state}: {summary['bundle']}\n"
        f"  size {summary['bundle_size']} (model {summary['model_size']}, estimated {summary['estimated_size']}, "
        f"budget {summary['budget_size']})\n"
        f"  gate {summary['gate']}\n  publishable: {'yes' if summary['publishable'] else 'no'}"
    )


def _rel(path: Path, z) -> str:
    try:
        return str(path.resolve().relative_to(z.root))
    except ValueError:
        return str(path)


def main() -> None:
    """Console-script entry: run the app, turning ``ZooError`` into message, hint and exit code."""
    try:
        app()
    except ZooError as exc:
        if os.environ.get("ZOO_DEBUG") == "1":
            raise
        _report(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _report("interrupted", None)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: no traceback unless asked
        if os.environ.get("ZOO_DEBUG") == "1":
            raise
        _report(f"unexpected {type(exc).__name__}: {exc}", "run again with ZOO_DEBUG=1 for a traceback")
        sys.exit(1)


def _report(message: str, hint: str | None) -> None:
    err.print("error:", style="bold red", end=" ")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    if hint:
        err.print(f"  hint: {hint}", markup=False, highlight=False, soft_wrap=True)
