"""Read an upstream model from the Hub at one commit: its config, card metadata and LICENSE.

``zoo new`` starts here. A branch or tag is resolved to the commit sha it points at *now*,
and everything is read at that sha, so the recipe pins exactly what was read. huggingface_hub
is imported inside functions: commands that never reach the Hub do not pay for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError, FetchError

LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENSE.rst")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


class Upstream(BaseModel):
    """What ``zoo new`` read from the Hub; ``sha`` is the commit every file was read at."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    repo: str
    revision: str  # as asked: a branch, a tag or a sha
    sha: str
    config: dict[str, Any]
    card: dict[str, Any] | None  # README.md front matter, None when there is none
    license_file: str | None
    license_text: str | None

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.sha[:12]}"


def read_upstream(repo: str, revision: str = "main", endpoint: str | None = None) -> Upstream:
    """Resolve ``revision`` to a commit and read config.json, README.md and a LICENSE file there."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    with _reading(f"resolving {repo}@{revision}", repo, revision):
        info = api.model_info(repo, revision=revision)
    sha = str(info.sha or "")
    if not _COMMIT_SHA.fullmatch(sha):
        raise FetchError(f"{repo}@{revision}: the Hub answered no commit sha ({sha!r})", "check the --endpoint URL")
    names = {s.rfilename for s in info.siblings or []}
    with tempfile.TemporaryDirectory(prefix="zoo-new-") as tmp, _reading(f"reading {repo}@{sha[:12]}", repo, sha):
        def fetch(name: str) -> Path:
            return Path(api.hf_hub_download(repo, name, revision=sha, cache_dir=tmp))

        config = _config(fetch, names, f"{repo}@{sha[:12]}")
        card = _card(fetch("README.md"), f"{repo}@{sha[:12]}") if "README.md" in names else None
        license_file = next((name for name in LICENSE_FILES if name in names), None)
        text = fetch(license_file).read_text(encoding="utf-8", errors="replace") if license_file else None
    return Upstream(repo=repo, revision=revision, sha=sha, config=config, card=card, license_file=license_file,
                    license_text=text)


def _config(fetch: Any, names: set[str], where: str) -> dict[str, Any]:
    if "config.json" not in names:
        raise ConfigError(f"{where}: no config.json", "zoo new needs a transformers model (config.json at the root)")
    try:
        config = json.loads(fetch("config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}/config.json: not valid JSON ({exc})", "fix it upstream, or pass --config") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}/config.json: not a JSON object", "pass a transformers config.json with --config")
    return config


def _card(path: Path, where: str) -> dict[str, Any] | None:
    from huggingface_hub import metadata_load

    try:
        return metadata_load(path)
    except Exception as exc:  # yaml raises several unrelated types; any of them means "unreadable"
        raise ConfigError(
            f"{where}/README.md: the front matter cannot be parsed ({type(exc).__name__})",
            "zootool reads the license from it and does not guess: fix it upstream, or pass --config and --license",
        ) from None


@contextlib.contextmanager
def _reading(stage: str, repo: str, revision: str) -> Iterator[None]:
    """Hub answers about the input (no such repo or revision) exit 2; the network failing exits 9."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise ConfigError(f"{repo} is gated: the token cannot read it",
                          "accept its terms on the Hub, then set HF_TOKEN or run `hf auth login`") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"repository {repo} not found", "check the Hub id; a private repo needs HF_TOKEN") from None
    except RevisionNotFoundError:
        raise ConfigError(f"{repo} has no revision {revision}",
                          "pass an existing branch, tag or commit sha with --revision") from None
    except HfHubHTTPError as exc:
        raise _http_failure(exc, stage) from None
    except (httpx2.TransportError, LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise FetchError(f"could not reach the Hub while {stage} ({type(exc).__name__})",
                         "check the network and --endpoint (or HF_ENDPOINT), then run the same command again") from None


def _http_failure(exc: Any, stage: str) -> ConfigError | FetchError:
    status = exc.response.status_code if exc.response is not None else None
    if status == 401:
        return ConfigError(f"the Hub rejected the token (401) while {stage}",
                           "set HF_TOKEN to a valid token, or run `hf auth login`; public models need none")
    return FetchError(f"the Hub answered {status} while {stage}",
                      "check --endpoint (or HF_ENDPOINT); if the Hub is having trouble, run the same command later")
