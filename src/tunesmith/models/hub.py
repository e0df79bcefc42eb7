"""Hugging Face Hub ids: download a model's files into the Hugging Face cache, or find them there when offline.

Only what loading needs is fetched: safetensors weights, configs and tokenizer files from the repo's top level
(`*.py` too when `model.trust_remote_code` allows running it). Pickled weights (`*.bin`, `*.pt`) are never
downloaded, so a repo that has no others is an error rather than a silent fallback.

The cache and offline mode follow huggingface_hub's environment variables (`HF_HUB_CACHE`, `HF_HOME`,
`HF_HUB_OFFLINE`), read at each call: huggingface_hub reads them once, at import, and tunesmith passes its
reading explicitly (`cache_dir`, `local_files_only`), so a change made after import (a test, a notebook) counts.
huggingface_hub is imported where it is used (start-up time, see `tunesmith.models.loading`).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from tunesmith.errors import ModelError
from tunesmith.text import shorten

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
"""`owner/name`, the form of a Hub model id."""
LOADING_FILES = ["*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
"""Weights (and their shard index), config, generation config and tokenizer files (tokenizer.json, vocab/merges,
sentencepiece `.model`, chat template)."""
REMOTE_CODE_FILES = ["*.py"]
TOP_LEVEL_ONLY = ["*/*"]
"""Subfolders hold other formats (onnx/, original/ checkpoints, gguf/): never what transformers loads."""
HTTP_CLIENTS = ("requests", "urllib3", "httpx", "httpx2", "httpcore")
_TRUE = ("1", "true", "yes", "on")


def looks_like_hub_id(name: str) -> bool:
    return HUB_ID.fullmatch(name) is not None


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (default ``~/.cache/huggingface/hub``), as huggingface_hub decides it."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def offline_reason(offline_setting: bool) -> str | None:
    """Why downloads are off (``model.offline``, or the variable that says so), or None when they are allowed."""
    if offline_setting:
        return "model.offline: true"
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable}={os.environ[variable]}"
    return None


def hub_snapshot(repo_id: str, revision: str | None, offline_setting: bool, remote_code: bool) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (null: main), downloaded if needed and allowed.

    Every failure is one `ModelError` naming the id and what to do (see `_download`)."""
    patterns = LOADING_FILES + (REMOTE_CODE_FILES if remote_code else [])
    reason = offline_reason(offline_setting)
    return _download(repo_id, revision, str(hub_cache_dir()), reason, tuple(patterns))


@functools.cache
def _download(repo_id: str, revision: str | None, cache: str, offline_reason: str | None,
              patterns: tuple[str, ...]) -> Path:
    # Memoized: training, evaluation and export each resolve the model, and online every resolution asks the Hub
    # for the revision's commit. Failures raise, so they are not memoized.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision!r}" if revision else ""
    download = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                      local_files_only=offline_reason is not None, allow_patterns=list(patterns),
                                      ignore_patterns=TOP_LEVEL_ONLY))
    except HFValidationError as exc:
        raise ModelError(f"model.name {repo_id!r} is not a valid Hub id: {shorten(str(exc), 160)}",
                         "a Hub id is owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct") from None
    except GatedRepoError:
        raise ModelError(f"model {repo_id!r} is gated on the Hugging Face Hub: its files need accepted terms and a "
                         "token", f"accept the terms on https://huggingface.co/{repo_id}, then log in (`hf auth "
                         "login`) or set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelError(f"model {repo_id!r} is not on the Hugging Face Hub (or is private)",
                         "check the spelling of model.name; for a private model log in (`hf auth login`) or set "
                         "HF_TOKEN; for a local folder give its path") from None
    except RevisionNotFoundError:
        raise ModelError(f"model {repo_id!r} has no revision {revision or 'main'!r} on the Hugging Face Hub",
                         "set model.revision to one of its branches, tags or commits, or null for main") from None
    except LocalEntryNotFoundError as exc:
        if offline_reason is not None:
            raise ModelError(
                f"model {repo_id!r}{at} is not in the Hugging Face cache ({cache}) and downloads are off "
                f"({offline_reason})",
                f"download it where there is a network (`{download}`) and copy the cache here (or point HF_HUB_CACHE "
                f"at it), or allow downloads ({_undo(offline_reason)})") from None
        cause = exc.__cause__ or exc
        raise ModelError(
            f"cannot download model {repo_id!r}{at} from the Hugging Face Hub, and it is not in the cache ({cache}): "
            f"{type(cause).__name__}: {shorten(' '.join(str(cause).split()), 160)}",
            f"check the network (or HF_ENDPOINT, proxy settings), or download it where there is one (`{download}`) "
            "and copy the cache here") from None
    except HfHubHTTPError as exc:
        raise ModelError(f"the Hugging Face Hub refused the download of {repo_id!r}{at}: "
                         f"{shorten(' '.join(str(exc).split()), 200)}",
                         "for a private model log in (`hf auth login`) or set HF_TOKEN; else try again later") from None
    except OSError as exc:  # the cache folder: not writable, disk full
        raise ModelError(f"cannot write model {repo_id!r} into the Hugging Face cache {cache}: {exc}",
                         "free disk space, or point HF_HUB_CACHE (or HF_HOME) at a writable folder") from None
    except Exception as exc:
        # The HTTP client's own errors (a proxy, a connection cut mid-file): their types changed with the client
        # huggingface_hub uses (requests, httpx, httpx2), so they are recognised by the module that defines them.
        if type(exc).__module__.split(".")[0] not in HTTP_CLIENTS:
            raise
        raise ModelError(f"the download of model {repo_id!r}{at} failed: {type(exc).__name__}: "
                         f"{shorten(' '.join(str(exc).split()), 200)}",
                         "check the network and try again; finished files stay in the cache") from None


def _undo(offline_reason: str) -> str:
    if offline_reason.startswith("model.offline"):
        return "set model.offline: false"
    return f"unset {offline_reason.split('=')[0]}"


def hub_id_of_snapshot(folder: Path) -> str | None:
    """The Hub id when ``folder`` is a snapshot in a Hugging Face cache (``…/models--owner--name/snapshots/
    <commit>``), else None. Hub names cannot contain ``--``, so the folder name splits back unambiguously."""
    folder = folder.expanduser().absolute()
    repo = folder.parent.parent.name
    if folder.parent.name != "snapshots" or not repo.startswith("models--"):
        return None
    parts = repo.split("--")
    return "/".join(parts[1:]) if len(parts) in (2, 3) else None
