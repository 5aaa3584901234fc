"""The command line's shared option and argument types (typer ``Annotated`` aliases).

No ``from __future__ import annotations`` here or in ``app``: Typer would evaluate the
annotation strings at every start.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

# Help texts are Rich markup: a literal "[" is written "\[".
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help=r"Target name from the recipe's \[targets].")]
ModelsArg = Annotated[Optional[list[str]], typer.Argument(
    help="Model ids or globs ('tiny-*'); one model with one --target is a single build.", show_default=False)]
TargetsOpt = Annotated[Optional[list[str]], typer.Option(
    "--target", "-t", help="Target name or glob; repeat for more (default: every target).", show_default=False)]
AllFlag = Annotated[bool, typer.Option("--all", help="Every model x target of the zoo.")]
ChangedFlag = Annotated[bool, typer.Option("--changed", help="Only rows zoo status marks never built or outdated.")]
QuantOpt = Annotated[Optional[str], typer.Option(help="Override the quant scheme.")]
KernelOpt = Annotated[Optional[str], typer.Option(help="Override the expert kernel.")]

# zoo build
ExecutorOpt = Annotated[Optional[str], typer.Option(
    help="Where a zoo-wide build runs: local (worker processes packed by predicted memory) or ray.")]
AddressOpt = Annotated[Optional[str], typer.Option(
    help="--executor ray: the cluster to join (default: $RAY_ADDRESS, else a new local cluster).")]
WorkerStorageOpt = Annotated[Optional[str], typer.Option(
    help="--executor ray: the folder on each worker to build in (default: $ZOO_WORKER_STORAGE or a temp folder).")]
JobsOpt = Annotated[Optional[int], typer.Option("--jobs", min=1, help=(
    "Local zoo-wide build: at most N builds at once (default: one per core, as memory and disk allow)."))]
PublishRowsFlag = Annotated[bool, typer.Option("--publish", help=(
    "Publish each row once its gate passes, from the worker that built it, as zoo publish does "
    "(the Hub token of this machine: HF_TOKEN or the login)."))]
EndpointOpt = Annotated[Optional[str], typer.Option(help="--publish: Hub endpoint (default: $HF_ENDPOINT or the Hub).")]
PrivateFlag = Annotated[bool, typer.Option("--private", help="--publish: create the repos private.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Local checkpoint folder instead of the recipe's source.")]
RevisionOpt = Annotated[Optional[str], typer.Option(help="Upstream commit sha (when the recipe pins none).")]
ForceFlag = Annotated[bool, typer.Option("--force", help=(
    "Rebuild even if an identical bundle exists (the cache only; the memory and disk checks still run)."))]
IgnoreResourcesFlag = Annotated[bool, typer.Option("--ignore-resources", help=(
    "Run stages even where this machine has less memory or free disk than they are predicted to need "
    "(zoo plan --json: resources); otherwise refused with exit 12."))]
NoGateFlag = Annotated[bool, typer.Option("--no-gate", help="Skip the quality gate; the card says 'not gated'.")]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")]
RecordFlag = Annotated[bool, typer.Option("--record", help=(
    "Write the build into zoo/records/ for the catalog (zoo publish always records)."))]
