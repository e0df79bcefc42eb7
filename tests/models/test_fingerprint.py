"""Model fingerprints follow the weights' content: remembered while a file is untouched, hashed again when it is
rewritten (even with its old size and mtime), the same for a copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from tunesmith.models import fingerprint
from tunesmith.models.fingerprint import model_fingerprint, weights_sha256


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))


def test_weights_hash_is_the_content_hash_and_is_remembered(tmp_path, monkeypatch):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    expected = hashlib.sha256(b"a" * 1000).hexdigest()
    assert weights_sha256(weights) == expected

    monkeypatch.setattr(fingerprint, "hashlib", None)  # hashing the file again would now fail
    assert weights_sha256(weights) == expected


def test_a_file_rewritten_with_its_old_size_and_mtime_is_hashed_again(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = weights_sha256(weights)
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights_sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest() != first


def test_a_damaged_memo_is_ignored(tmp_path, caplog):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    weights_sha256(weights)
    (tmp_path / "cache" / fingerprint.WEIGHT_HASHES_FILE).write_text("{", encoding="utf-8")
    assert weights_sha256(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert "damaged weight-hash memo" in caplog.text


def test_model_fingerprint_covers_weights_and_config_not_the_path(tiny_model_dir, tmp_path):
    original = model_fingerprint(tiny_model_dir)
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert model_fingerprint(copy) == original
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-3}), encoding="utf-8")
    assert model_fingerprint(copy) != original
