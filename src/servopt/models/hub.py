"""A Hugging Face model id's ``config.json``: from the local Hugging Face cache, or downloaded.

The cache is the one ``huggingface_hub`` keeps (``HF_HOME`` / ``HF_HUB_CACHE``,
``models--<org>--<name>/snapshots/<revision>/``); lookups and downloads go through its API
(``try_to_load_from_cache``, ``hf_hub_download``), so servopt finds whatever ``hf download``,
``transformers`` or vLLM put there. Only ``config.json`` (and an ``hf_quant_config.json`` already in
the cache) is read: servopt needs the architecture, never the weights. Downloads honour
``HF_HUB_OFFLINE`` and ``HF_TOKEN`` as the library does.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from servopt.errors import ServoptError
from servopt.models.hf_config import read_json

# An "org/name" repository id as the Hub spells them (no path separators beyond the one slash).
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubMiss(ServoptError):
    """The id is not in the local cache and cannot be downloaded now; the message says what to do."""


def looks_like_hf_id(text: str) -> bool:
    return bool(_HF_ID.match(text)) and ".." not in text


def _cached(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename)
    return path if isinstance(path, str) else None


def _hub_resolves() -> bool:
    """Whether the Hub's host name resolves. Without it huggingface_hub retries for ~25 s before it
    gives up; an unresolvable name means no network, so servopt says so at once."""
    from huggingface_hub import constants

    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except OSError:
        return False
    return True


def _what_to_do(repo_id: str) -> str:
    return (
        f"download it where you are online with `hf download {repo_id} config.json` "
        "(into the same HF_HOME), or give the path of its config.json"
    )


def config_files(repo_id: str, progress=None) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """``(config, hf_quant_config or None, where)`` for a Hub id; ``where`` is the file read.

    Raises HubMiss when the id is neither cached nor downloadable now, ServoptError for a gated or
    missing repository."""
    from huggingface_hub import constants

    path = _cached(repo_id, "config.json")
    if path is None:
        cache = constants.HF_HUB_CACHE
        if constants.HF_HUB_OFFLINE:
            raise HubMiss(
                "model",
                repo_id,
                f"not a servopt model name and not in the local Hugging Face cache ({cache}); "
                f"HF_HUB_OFFLINE is set: {_what_to_do(repo_id)}",
            )
        if not _hub_resolves():
            raise HubMiss(
                "model",
                repo_id,
                f"not a servopt model name and not in the local Hugging Face cache ({cache}), and "
                f"{urlparse(constants.ENDPOINT).hostname} cannot be reached: {_what_to_do(repo_id)}",
            )
        path = _download(repo_id, progress)
    quant = _cached(repo_id, "hf_quant_config.json")
    return read_json(Path(path)), (read_json(Path(quant)) if quant else None), path


def _download(repo_id: str, progress) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if progress:
        progress(f"downloading config.json of {repo_id} from the Hugging Face Hub")
    try:
        return hf_hub_download(repo_id, "config.json")
    except GatedRepoError:
        raise ServoptError(
            "model", repo_id, "is gated on the Hugging Face Hub: accept its license there and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise HubMiss(
            "model",
            repo_id,
            "no such model on the Hugging Face Hub (a private one needs HF_TOKEN), and not a servopt model name",
        ) from None
    except EntryNotFoundError:
        raise ServoptError("model", repo_id, "the repository has no config.json") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HubMiss(
            "model", repo_id, f"could not download config.json ({first}): {_what_to_do(repo_id)}"
        ) from None
