"""The ``zoo`` command: thin typer commands over the core; the only module that exits."""

# No `from __future__ import annotations`: Typer would evaluate every annotation string at each
# start (get_type_hints over all commands), about 5 ms of every command.

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import __version__
from ..errors import EXIT_CODES
from ..paths import relative
from .group import ZooGroup
from .options import (
    AddressOpt, AllFlag, ChangedFlag, DryRunFlag, EndpointOpt, ExecutorOpt, ForceFlag, IgnoreResourcesFlag,
    JobsOpt, JsonFlag, KernelOpt, ModelsArg, NoGateFlag, PrivateFlag, PublishRowsFlag, QuantOpt, RecordFlag,
    RevisionOpt, TargetOpt, TargetsOpt, WeightsOpt, WorkerStorageOpt,
)
from .output import console, emit_json, report, say


app = typer.Typer(
    cls=ZooGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Build, gate and publish Core AI model bundles from declarative recipes.",
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
)
_options: dict[str, Any] = {"root": None}



def _version(value: bool) -> None:
    if value:
        say(f"zootool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    root: Annotated[Optional[Path], typer.Option(help="Zoo checkout (default: $ZOO_ROOT or search upward).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    _options["root"] = root


def zoo_root() -> Path:
    from ..config.zoo_root import check_root, find_root

    root = _options["root"]
    return check_root(root.resolve(), "--root") if root else find_root()


def zoo():
    from ..config.zoo_data import Zoo

    return Zoo(zoo_root())


def overrides(**values: Any):
    from ..config.recipe import Settings

    given = {k: v for k, v in values.items() if v is not None}
    return Settings(**given) if given else None


def single_only(**values: Any) -> None:
    """Options that apply to one model and target only are refused on a zoo-wide run."""
    from ..errors import ConfigError

    given = [name.replace("_", "-") for name, value in values.items() if value is not None]
    if given:
        raise ConfigError(f"--{given[0]} applies to one model and one --target, not to a zoo-wide run",
                          "name one model and one --target, or drop the option")


@app.command("list")
def list_models(as_json: JsonFlag = False) -> None:
    """Every model x target with its size estimate against the platform budget."""
    from ..errors import ConfigError
    from .list_cache import list_rows

    root = zoo_root()
    rows, errors = list_rows(root, lambda path: relative(path, root))
    if as_json:
        emit_json([row.to_json() for row in rows])
    else:
        from .list_view import ListView

        console().print(ListView(rows))
    for problem in errors[:-1]:
        report(problem.message, problem.hint)
    if errors:
        raise ConfigError(errors[-1].message, errors[-1].hint)


@app.command()
def show(model: str, as_json: JsonFlag = False) -> None:
    """A recipe: source, license, architecture and every target's resolved plan."""
    from ..plan.resolve import resolve
    from ..config.registry import get
    from .render import list_table

    z = zoo()
    recipe, path = get(z, model)
    plans = [resolve(recipe, t, z, recipe_file=relative(path, z.root)) for t in recipe.targets]
    if as_json:
        emit_json({"recipe": recipe.model_dump(mode="json", by_alias=True), "plans": [p.summary() for p in plans]})
        return
    say(f"{recipe.model.name} ({recipe.id})  {relative(path, z.root)}")
    say(recipe.model.description)
    say(f"family: {recipe.architecture.family}   license: {recipe.model.license}")
    console().print(list_table(plans))


@app.command()
def plan(
    model: str,
    target: TargetOpt,
    quant: QuantOpt = None,
    kernel: KernelOpt = None,
    context_length: Annotated[Optional[int], typer.Option(help="Override the context length.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Resolve MODEL for a target into a build plan (no disk, no network); refuse over-budget plans."""
    from ..plan.fits import require_fits
    from ..plan.resolve import resolve
    from ..config.registry import get
    from .render import groups_table, plan_table

    z = zoo()
    recipe, path = get(z, model)
    cli = overrides(quant=quant, kernel=kernel, context_length=context_length)
    resolved = resolve(recipe, target, z, recipe_file=relative(path, z.root), overrides=cli)
    require_fits(resolved, recipe, z)
    if as_json:
        emit_json(resolved.summary())
        return
    screen = console()
    screen.print(plan_table(resolved))
    screen.print(groups_table(resolved))


@app.command()
def families(as_json: JsonFlag = False) -> None:
    """The architecture families the zoo builds: model types, transformers classes, module."""
    from .families import families_command

    families_command(as_json)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a recipe, for editor validation of recipes/*.toml."""
    from ..config.recipe import Recipe

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
    from .new import new_command

    z = zoo()
    result = new_command(z, hub_id, config=config, license_id=license, model_id=model_id, hub=hub,
                         revision=revision, endpoint=endpoint)
    if as_json:
        emit_json(result)
        return
    if "revision" in result:
        say(f"read {result['hub']} at commit {result['revision']} (license {result['license']}, "
                  f"from {result['license_from']})")
    say(f"wrote {result['path']}; next: zoo plan {result['id']} --target mac")


@app.command()
def build(
    models: ModelsArg = None,
    target: TargetsOpt = None,
    all_rows: AllFlag = False,
    changed: ChangedFlag = False,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    worker_storage: WorkerStorageOpt = None,
    jobs: JobsOpt = None,
    publish_rows: PublishRowsFlag = False,
    endpoint: EndpointOpt = None,
    private: PrivateFlag = False,
    weights: WeightsOpt = None,
    revision: RevisionOpt = None,
    force: ForceFlag = False,
    ignore_resources: IgnoreResourcesFlag = False,
    no_gate: NoGateFlag = False,
    dry_run: DryRunFlag = False,
    record: RecordFlag = False,
    quant: QuantOpt = None,
    kernel: KernelOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Build models x targets into build/<model>/<target>/: convert, quantize, gate, card, manifest.

    One model and one --target build one bundle; globs, several targets, --all, --changed or
    --publish build every row selected (see zoo status), each in its own worker, and print a summary.
    """
    from .batch import check_executor, one_row, publish_request

    check_executor(executor, address=address, worker_storage=worker_storage)
    request = publish_request(publish_rows, gate=not no_gate, record=record, endpoint=endpoint,
                              private=private or None)
    row = one_row(models, target, all_rows or changed or bool(executor) or jobs is not None or publish_rows)
    if row is None:
        from ..build.batch import BatchOptions
        from .batch import build_many

        single_only(weights=weights, revision=revision, quant=quant, kernel=kernel)
        options = BatchOptions(force=force, gate=not no_gate, record=record, ignore_resources=ignore_resources,
                               executor=executor or "local", address=address, worker_storage=worker_storage,
                               max_builds=jobs, publish=request)
        build_many(zoo(), models or [], target or [], all_rows, changed, dry_run, options, as_json)
        return
    _build_row(*row, dry_run=dry_run, quant=quant, kernel=kernel, as_json=as_json, weights=weights,
               revision=revision, force=force, gate=not no_gate, record=record, ignore_resources=ignore_resources)


def _build_row(model: str, target: str, *, dry_run: bool, quant: Optional[str], kernel: Optional[str],
               as_json: bool, **options: Any) -> None:
    """One model and one target: its plan with --dry-run, else its build (``options``: ``BuildOptions``)."""
    if dry_run:
        plan(model, target, quant=quant, kernel=kernel, context_length=None, as_json=as_json)
        return
    from ..build.pipeline import BuildOptions
    from .build_one import build_one

    build_one(zoo(), model, target, overrides(quant=quant, kernel=kernel), BuildOptions(**options),
              options["revision"], as_json)


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory (build/<model>/<target>).")],
    as_json: JsonFlag = False,
) -> None:
    """Re-check a bundle's manifest hashes, contents, license, card, budget and gate record."""
    from ..build.quiet import quiet_command
    from ..errors import VerifyError
    from ..bundle.verify import require, verify_bundle

    if not bundle.is_dir():
        raise VerifyError(f"{bundle}: not a directory", "pass a bundle folder, e.g. build/tiny-lfm2-moe/mac")
    with quiet_command("verify", _options["root"]):
        report = verify_bundle(bundle)
    if as_json:
        emit_json({"bundle": str(bundle), "ok": report.ok, "publishable": report.publishable,
                   "problems": report.problems, "warnings": report.warnings,
                   "publish_refusals": report.publish_refusals if report.ok else []})
    require(report)
    if not as_json:
        from .render import verify_summary

        for warning in report.warnings:
            console(stderr=True).print(f"warning: {warning}", highlight=False, soft_wrap=True)
        say(verify_summary(report))


@app.command()
def run(
    bundle: Annotated[Path, typer.Argument(help="A bundle (build/<model>/<target>) or its model folder.")],
    prompt: Annotated[Optional[str], typer.Option(help="The user message; the bundle's chat template wraps it.")] = None,
    messages: Annotated[Optional[Path], typer.Option(
        help="A conversation instead: a JSON file of {role, content} turns (system, user, assistant), "
             "ending with a user turn.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Stop after this many new tokens.")] = 64,
    greedy: Annotated[bool, typer.Option("--greedy", help="Take the top token (default: sample as generation_config.json says).")] = False,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Generate text from a bundle through the engine driver, as an app's engine would run it."""
    from .run import run_command

    run_command(bundle, prompt, messages, max_tokens, greedy, seed, as_json=as_json, root=_options["root"])


@app.command()
def gate(
    model: Annotated[str, typer.Argument(help="Model id, or with --replay a bundle directory.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target name.")] = None,
    replay: Annotated[Optional[Path], typer.Option(help="Re-run only the candidate against this gate.json.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local checkpoint folder.")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Where to write the new transcript.")] = None,
    runtime: Annotated[str, typer.Option(
        help="auto (the plan's gate_runtime), engine (Core AI runtime) or streamed (torch, one layer at a time).")] = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Run the fp32-oracle margin gate against a built bundle (or replay a published transcript)."""
    from .gate import run_gate_command

    summary = run_gate_command(zoo(), model, target, replay, weights, out_path, runtime, show_progress=not as_json)
    emit_json(summary) if as_json else say(f"gate: {summary['line']} -> {summary['transcript']}")
    if not summary["passed"]:
        from ..errors import GateFailedError

        raise GateFailedError(f"gate failed: {summary['line']}", "see the transcript for the flipped positions")


@app.command()
def publish(
    models: ModelsArg = None,
    target: TargetsOpt = None,
    all_rows: AllFlag = False,
    changed: Annotated[bool, typer.Option("--changed", help="Only rows not yet published at their current plan.")] = False,
    repo: Annotated[Optional[str], typer.Option(help="Hub repo namespace/name (default: the recipe's publish.repo).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[Optional[str], typer.Option(help="Branch to commit to (default: main).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Hub endpoint, e.g. a local test server.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded; no network.")] = False,
    record: Annotated[Optional[bool], typer.Option(
        "--record/--no-record", help="Write zoo/records/ (default: only when publishing to the public Hub).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish a built, verified, gated bundle to the Hugging Face Hub in one commit, then tag it.

    Globs, several targets, --all or --changed publish every row selected, one after the other.
    """
    from .batch import one_row

    row = one_row(models, target, all_rows or changed)
    if row is None:
        from .batch import publish_many

        single_only(repo=repo)
        publish_many(zoo(), models or [], target or [], all_rows, changed, as_json, private=private,
                     revision=revision, endpoint=endpoint, dry_run=dry_run, record=record)
        return
    model, target = row
    from .publish import publish_command

    result = publish_command(zoo(), model, target, repo=repo, private=private, revision=revision,
                             endpoint=endpoint, dry_run=dry_run, record=record)
    if as_json:
        emit_json(result)
    elif dry_run:
        say(f"would publish {len(result['files'])} files ({result['total_bytes']:,} bytes) to {result['repo']}")
        for entry in result["files"]:
            say(f"  {entry['path']}  {entry['size']:,}")
        say(f"card front matter: {result['card_front_matter']}")
    elif result["commit_sha"]:
        say(f"published {result['repo_url']} commit {result['commit_sha']} tag {result['tag']} "
                  f"({len(result['files_uploaded'])} files uploaded, {len(result['files_deleted'])} deleted)")
    else:
        say(f"{result['repo_url']} already has this bundle: no commit made (tag {result['tag']})")


@app.command()
def status(models: ModelsArg = None, target: TargetsOpt = None, as_json: JsonFlag = False) -> None:
    """Every model x target: plan hash against its last build, state, estimated size, time and memory."""
    from .batch import status_command

    status_command(zoo(), models or [], target or [], as_json)


@app.command("index")
def index(
    check: Annotated[bool, typer.Option("--check", help="Fail (exit 2) if a generated catalog file is stale.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate zoo/README.md, zoo/index.json and zoo/<id>.md from recipes and build records."""
    from .index import index_command

    summary = index_command(zoo(), check)
    if as_json:
        emit_json(summary)
        return
    changed = ", ".join(summary["changed"]) or "nothing changed"
    say(f"catalog up to date ({len(summary['files'])} files)" if check else f"zoo index: {changed}")


def main() -> None:
    """Console-script entry; errors become message, hint and exit code in ``ZooGroup``."""
    # Discovering pydantic plugins scans every installed distribution's entry points (~6 ms
    # of each start); zootool's models take none. Set the variable empty to load them anyway.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    app()
