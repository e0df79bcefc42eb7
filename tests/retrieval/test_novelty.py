"""NoveltyIndex: built, scored, saved and loaded with a fake embedder of known vectors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tunesmith.errors import RunError
from tunesmith.retrieval.novelty import INDEX_FILE, META_FILE, NoveltyIndex

TRAINING = ["free prize call now", "see you at lunch", "are we meeting tomorrow"]


def test_an_input_seen_in_training_scores_zero_and_an_unrelated_one_about_one(word_hash_embedder):
    index = NoveltyIndex.build([*TRAINING, TRAINING[0]], word_hash_embedder())
    assert index.size == 4
    scores = index.scores([TRAINING[1], "see you at dinner", "quantum chromodynamics lecture notes"])
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < scores[1] < 0.5 < scores[2]
    assert scores[2] == pytest.approx(1.0, abs=0.35)  # hashed words may collide, never overlap much
    assert index.scores([]) == []


def test_an_index_needs_training_inputs(word_hash_embedder):
    with pytest.raises(ValueError, match="at least one training input"):
        NoveltyIndex.build([], word_hash_embedder())


def test_a_saved_index_scores_as_the_built_one(tmp_path, word_hash_embedder):
    built = NoveltyIndex.build(TRAINING, word_hash_embedder())
    built.save(tmp_path / "novelty")
    assert sorted(path.name for path in (tmp_path / "novelty").iterdir()) == sorted([INDEX_FILE, META_FILE])
    loaded = NoveltyIndex.load(tmp_path / "novelty", word_hash_embedder())
    queries = ["free lunch now", "nothing alike here"]
    assert loaded.scores(queries) == pytest.approx(built.scores(queries)) and loaded.size == 3


def test_loading_with_another_embedder_is_a_run_error(tmp_path, word_hash_embedder):
    NoveltyIndex.build(TRAINING, word_hash_embedder()).save(tmp_path / "novelty")
    other = type("OtherEmbedder", (word_hash_embedder,), {"identity": "another-model"})
    with pytest.raises(RunError, match="made by another embedding model"):
        NoveltyIndex.load(tmp_path / "novelty", other())


def test_a_missing_index_is_a_run_error(tmp_path, word_hash_embedder):
    with pytest.raises(RunError, match="holds no novelty index"):
        NoveltyIndex.load(tmp_path / "novelty", word_hash_embedder())


SAVER = textwrap.dedent('''
    import sys, time
    import numpy as np
    from tunesmith.retrieval import novelty

    class Embedder:
        identity = "second"
        def encode(self, texts):
            vectors = np.ones((len(texts), 4), dtype=np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    real = novelty.write_json
    def slow_write_json(path, value):  # the index file is written; die before the folder is published
        print("staged", flush=True)
        time.sleep(60)
        real(path, value)

    novelty.write_json = slow_write_json
    novelty.NoveltyIndex.build(["a", "b"], Embedder()).save(sys.argv[1])
''')


def test_a_save_killed_midway_leaves_the_old_index(tmp_path, word_hash_embedder):
    folder = tmp_path / "novelty"
    NoveltyIndex.build(TRAINING, word_hash_embedder()).save(folder)
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(folder)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert saver.stdout.readline().strip() == "staged"
        saver.send_signal(signal.SIGKILL)
    finally:
        saver.wait(timeout=30)
    loaded = NoveltyIndex.load(folder, word_hash_embedder())
    assert loaded.size == 3 and loaded.scores([TRAINING[0]]) == pytest.approx([0.0], abs=1e-6)
