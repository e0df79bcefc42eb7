"""Hub ids with downloads allowed: what is asked of huggingface_hub, and each of its failures as one line naming the
id and the fix. The download function is replaced here: no test reaches the network."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tunesmith.models.hub import hub_cache_dir, hub_snapshot, offline_reason


def hub_error(kind: type[Exception], message: str) -> Exception:
    """An HTTP error of huggingface_hub without the HTTP response its constructor wants."""
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


@pytest.fixture()
def online(monkeypatch, tmp_path):
    """Downloads allowed (HF_HUB_OFFLINE unset), into an empty cache; ``online(result)`` makes the download function
    return or raise ``result`` and returns the list of keyword arguments it was called with."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))

    def install(result):
        calls = []

        def fake_download(repo_id, **kwargs):
            calls.append({"repo_id": repo_id, **kwargs})
            if isinstance(result, BaseException):
                raise result
            return str(result)

        monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
        return calls

    return install


def test_online_it_asks_for_loading_files_only_once_per_process(online, tmp_path):
    calls = online(tmp_path / "snapshot")
    assert hub_snapshot("owner/model", None, False, False) == tmp_path / "snapshot"
    assert hub_snapshot("owner/model", None, False, False) == tmp_path / "snapshot"
    assert len(calls) == 1  # memoized: training, evaluation and export resolve the model again
    (call,) = calls
    assert call["repo_id"] == "owner/model" and call["revision"] is None and call["local_files_only"] is False
    assert call["cache_dir"] == str(tmp_path / "hf-cache")
    assert "*.safetensors" in call["allow_patterns"] and "*.json" in call["allow_patterns"]
    assert not any(pattern.endswith((".bin", ".pt", ".py")) for pattern in call["allow_patterns"])
    assert call["ignore_patterns"] == ["*/*"]


def test_remote_code_is_downloaded_only_when_trusted(online, tmp_path):
    calls = online(tmp_path / "snapshot")
    hub_snapshot("owner/custom", "v2", False, True)
    assert "*.py" in calls[0]["allow_patterns"] and calls[0]["revision"] == "v2"


@pytest.mark.parametrize(("raised", "expected"), [
    (hub_error(RepositoryNotFoundError, "404 Client Error"),
     "model 'owner/model' is not on the Hugging Face Hub (or is private) (check the spelling of model.name; for a "
     "private model log in (`hf auth login`) or set HF_TOKEN; for a local folder give its path)"),
    (hub_error(GatedRepoError, "403 Client Error"),
     "model 'owner/model' is gated on the Hugging Face Hub: its files need accepted terms and a token (accept the "
     "terms on https://huggingface.co/owner/model, then log in (`hf auth login`) or set HF_TOKEN)"),
    (hub_error(RevisionNotFoundError, "404 Client Error"),
     "model 'owner/model' has no revision 'main' on the Hugging Face Hub (set model.revision to one of its "
     "branches, tags or commits, or null for main)"),
    (HFValidationError("Repo id must use alphanumeric chars"),
     "model.name 'owner/model' is not a valid Hub id: Repo id must use alphanumeric chars (a Hub id is owner/name, "
     "e.g. Qwen/Qwen2.5-0.5B-Instruct)"),
])
def test_hub_refusals_are_one_line_model_errors(online, error_of, raised, expected):
    online(raised)
    assert error_of(lambda: hub_snapshot("owner/model", None, False, False)) == expected


def test_no_network_and_not_cached_names_the_cause(online, error_of, tmp_path):
    unreachable = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")
    unreachable.__cause__ = ConnectionError("[Errno -3] Temporary failure\nin name resolution")
    online(unreachable)
    assert error_of(lambda: hub_snapshot("owner/model", None, False, False)) == (
        f"cannot download model 'owner/model' from the Hugging Face Hub, and it is not in the cache "
        f"({tmp_path / 'hf-cache'}): ConnectionError: [Errno -3] Temporary failure in name resolution (check the "
        "network (or HF_ENDPOINT, proxy settings), or download it where there is one (`hf download owner/model`) "
        "and copy the cache here)")


def test_http_client_errors_are_model_errors_and_other_errors_are_not(online, error_of):
    proxy_error = type("ProxyError", (Exception,), {"__module__": "httpx2"})
    online(proxy_error("407 Proxy Authentication Required"))
    assert error_of(lambda: hub_snapshot("owner/model", None, False, False)) == (
        "the download of model 'owner/model' failed: ProxyError: 407 Proxy Authentication Required (check the "
        "network and try again; finished files stay in the cache)")
    online(TypeError("a bug, not a download failure"))
    with pytest.raises(TypeError):
        hub_snapshot("owner/other", None, False, False)


def test_an_unwritable_cache_is_named(online, error_of, tmp_path):
    online(PermissionError(13, "Permission denied"))
    message = error_of(lambda: hub_snapshot("owner/model", None, False, False))
    assert message.startswith(f"cannot write model 'owner/model' into the Hugging Face cache {tmp_path / 'hf-cache'}")
    assert message.endswith("(free disk space, or point HF_HUB_CACHE (or HF_HOME) at a writable folder)")


def test_the_cache_follows_huggingface_hubs_variables_at_call_time(monkeypatch, tmp_path):
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    assert hub_cache_dir() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_cache_dir() == tmp_path / "hub"


def test_offline_is_the_setting_or_either_variable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert offline_reason(False) is None
    assert offline_reason(True) == "model.offline: true"
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert offline_reason(False) == "TRANSFORMERS_OFFLINE=1"
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert offline_reason(False) is None
