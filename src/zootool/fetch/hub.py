"""Get the checkpoint a plan converts: generated, a local ``--weights DIR``, or a pinned Hub snapshot."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..arch.registry import architecture_of
from ..config.recipe import GeneratedSource, HubSource
from ..errors import ConfigError, FetchError
from ..plan.resolve import BuildPlan

# Hub checkpoints are bf16; a generated one is too, so it converts like the real thing.
GENERATED_DTYPE = "bfloat16"
GENERATED_LICENSE = """\
{model}: a generated test fixture

zootool wrote this checkpoint from seed {seed}: random weights of the architecture, no
upstream weights and nothing trained on data. The recipe licenses the model under the
{license} ({license_id}, {link}); its copyright holders are the zootool authors.
"""
NO_LOCAL_TEXT = """\
The zoo holds no local text of that license, so this note names it instead of the full text.
"""
HUB_PATTERNS = ["*.json", "*.safetensors", "LICENSE*", "tokenizer*", "*.txt", "*.jinja"]
def fetch_checkpoint(
    plan: BuildPlan, cache_root: Path, license_dir: Path, *, weights: Path | None = None,
    revision: str | None = None,
) -> Path:
    """A local checkpoint directory for ``plan``, checked against the recipe and its license."""
    if weights is not None:
        folder = _local(weights)
    elif isinstance(plan.source, GeneratedSource):
        folder = _generated(plan, cache_root, license_dir)
    else:
        folder = _hub(plan.source, revision)
    check_checkpoint(plan, folder, license_dir)
    return folder


def check_checkpoint(plan: BuildPlan, folder: Path, license_dir: Path) -> None:
    """Refuse a checkpoint without config, weights or license text, or that contradicts the recipe."""
    from .license_text import license_text

    config = read_json(folder / "config.json")
    if not any(folder.glob("*.safetensors")):
        raise FetchError(f"{folder}: no *.safetensors weights", "point --weights at a safetensors checkpoint")
    license_text(plan, folder, license_dir)  # the upstream's file, or the zoo's copy of a standard text
    upstream = architecture_of(config, str(folder / "config.json"))
    diffs = plan.architecture.differences(upstream)
    if diffs:
        raise ConfigError(
            f"{folder / 'config.json'} disagrees with the recipe's [architecture]: " + "; ".join(diffs),
            "the upstream config.json is the authority: update the recipe (zoo new --config prints the values)",
        )


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FetchError(f"{path}: not found", "a checkpoint needs its config.json") from None
    except json.JSONDecodeError as exc:
        raise FetchError(f"{path}: not valid JSON ({exc})", "re-download the checkpoint") from None


def _local(weights: Path) -> Path:
    if not weights.is_dir():
        raise FetchError(f"--weights {weights}: not a directory", "pass the folder holding config.json")
    return weights.resolve()


def is_fetched(plan: BuildPlan, cache_root: Path, revision: str | None = None) -> bool:
    """Whether the plan's checkpoint is already complete on disk (fetching it writes nothing)."""
    if isinstance(plan.source, GeneratedSource):
        return (_generated_folder(plan, cache_root) / ".complete").is_file()
    return _complete(fetch_folder(plan, cache_root, revision))


def _complete(snapshot: Path) -> bool:
    """A Hub snapshot with its config and every weight shard."""
    if not (snapshot / "config.json").is_file():
        return False
    index = snapshot / "model.safetensors.index.json"
    if not index.is_file():
        return (snapshot / "model.safetensors").is_file()
    shards = set(read_json(index).get("weight_map", {}).values())
    return bool(shards) and all((snapshot / shard).is_file() for shard in shards)


def _snapshot(source: HubSource, pinned: str) -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / ("models--" + source.hub.replace("/", "--")) / "snapshots" / pinned


def fetch_folder(plan: BuildPlan, cache_root: Path, revision: str | None = None) -> Path:
    """Where fetching the plan's checkpoint writes: the generated folder, or the Hub snapshot."""
    if isinstance(plan.source, GeneratedSource):
        return _generated_folder(plan, cache_root)
    return _snapshot(plan.source, pinned_revision(plan.source, revision))


def _generated_folder(plan: BuildPlan, cache_root: Path) -> Path:
    from .synthetic import GENERATOR_VERSION

    config = plan.architecture.to_hf() | {"initializer_range": plan.source.init_std}
    identity = {"config": config, "dtype": GENERATED_DTYPE, "generator": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root / "checkpoints" / f"{plan.recipe_id}-{key}-seed{plan.source.seed}"


def _generated(plan: BuildPlan, cache_root: Path, license_dir: Path) -> Path:
    """Generate (once, cached by architecture, seed and generator version) the recipe's random checkpoint."""
    from .synthetic import generate_checkpoint

    config = plan.architecture.to_hf() | {"initializer_range": plan.source.init_std}
    folder = _generated_folder(plan, cache_root)
    if (folder / ".complete").is_file():
        return folder
    # Builds of two targets of one recipe may run at once (zoo build --all): one generates, the other waits.
    with _exclusive(cache_root / "locks" / f"{folder.name}.lock"):  # beside checkpoints/, not in it
        if (folder / ".complete").is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        generate_checkpoint(folder, config, plan.source.seed, dtype=GENERATED_DTYPE)
        _write_generated_license(plan, folder, license_dir)
        (folder / ".complete").write_text("")
    return folder


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """An advisory lock between processes of this machine, released when the holder exits."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_generated_license(plan: BuildPlan, folder: Path, license_dir: Path) -> None:
    """A note on the fixture, with the zoo's text of the recipe's license, or naming it where the zoo has none."""
    text = license_dir / f"{plan.license_id}.txt"
    note = GENERATED_LICENSE.format(
        model=plan.recipe_id, seed=plan.source.seed, license=plan.license.name, license_id=plan.license_id,
        link=plan.license.link,
    )
    body = f"The license text follows.\n\n{text.read_text()}" if text.is_file() else NO_LOCAL_TEXT
    (folder / plan.license.text_file).write_text(f"{note}{body}")


def _hub(source: HubSource, revision: str | None) -> Path:
    """``snapshot_download`` at a pinned commit; never an unpinned branch.

    A pinned commit never changes, so a complete snapshot in the cache is used without the
    network; a missing one fails in seconds when HF_HUB_OFFLINE is set or the Hub is out of reach.
    """
    pinned = pinned_revision(source, revision)
    snapshot = _snapshot(source, pinned)
    if _complete(snapshot):
        return snapshot
    require_downloadable(source, pinned)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source.hub, revision=pinned, allow_patterns=HUB_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise FetchError(
            f"could not download {source.hub}@{pinned[:12]}: {type(exc).__name__}: {_first_line(exc)}",
            "check the network and the revision, or pass a local checkpoint with --weights DIR",
        ) from None


def require_downloadable(source: HubSource, pinned: str) -> None:
    """Raise ``FetchError`` now if the weights cannot come: HF_HUB_OFFLINE is set, or the Hub is out of reach."""
    from huggingface_hub import constants

    from .reach import unreachable

    weights = f"the weights of {source.hub}@{pinned[:12]}"
    cache = constants.HF_HUB_CACHE
    if constants.HF_HUB_OFFLINE:
        raise FetchError(f"{weights} are not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set",
                         "unset HF_HUB_OFFLINE where the Hub is reachable, or fill the cache there first "
                         f"(hf download {source.hub} --revision {pinned}) and copy it here")
    reason = unreachable(constants.ENDPOINT)
    if reason:
        raise FetchError(f"{weights} are not in the Hugging Face cache and {constants.ENDPOINT} cannot be reached "
                         f"({reason})", "build this row where the Hub is reachable, or fill the cache "
                         f"({cache}) first; with HF_HUB_OFFLINE=1, zoo build --changed skips such rows")


def pinned_revision(source: HubSource, revision: str | None) -> str:
    """The commit a Hub source is fetched at (``--revision`` first); an unpinned source is refused."""
    pinned = revision or source.revision
    if not pinned:
        raise ConfigError(
            f"model.source: {source.hub} has no pinned revision",
            "set model.source.revision to the upstream commit sha, or pass --revision SHA",
        )
    return pinned


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0]
