"""A tokenizer from the Hub, for a model folder that embeds none: what ``AutoTokenizer.from(pretrained:)`` reads.

Apple's LanguageBundle loads ``<bundle>/tokenizer/`` when the bundle embeds it and only
otherwise downloads ``language.tokenizer``, a Hub id. ``zoo run`` does the same, through the
Hugging Face cache (``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` honoured); an endpoint that does not
answer fails in seconds, not after the client's minute of retries.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FetchError

TOKENIZER_FILES = [
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
    "chat_template.jinja",
]


def hub_tokenizer(repo_id: str) -> Path:
    """A folder holding the tokenizer files of Hub repo ``repo_id`` (at least ``tokenizer.json``)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from .reach import unreachable

    what = f"the bundle embeds no tokenizer/tokenizer.json and its language.tokenizer {repo_id!r}"
    reason = None if constants.HF_HUB_OFFLINE else unreachable(constants.ENDPOINT)
    if reason:
        raise FetchError(f"{what} cannot be fetched: {constants.ENDPOINT} cannot be reached ({reason})", _HINT)
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=TOKENIZER_FILES))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise FetchError(f"{what} cannot be fetched: {type(exc).__name__}: {first}", _HINT) from None
    if not (folder / "tokenizer.json").is_file():
        raise FetchError(f"{what} has no tokenizer.json on the Hub", _HINT)
    return folder


_HINT = "put the tokenizer in the model folder's tokenizer/, or run where the Hub (HF_ENDPOINT) is reachable"
