"""The run's reference.json and novelty/ under a kill: evaluation removes the old reference before it replaces the
novelty index, so a process killed midway leaves no reference (evaluate again) rather than one measured with
another index, and the index is whole (the old one) either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tunesmith.evaluate.reference import RunReference, write_run_reference
from tunesmith.results.reference import Reference, read_reference
from tunesmith.retrieval.novelty import NoveltyIndex
from tunesmith.run_dir import RunDir

WRITER = textwrap.dedent('''
    import sys, time
    import numpy as np
    from tunesmith.evaluate.reference import RunReference, write_run_reference
    from tunesmith.results.reference import Reference
    from tunesmith.retrieval import novelty
    from tunesmith.run_dir import RunDir

    class Embedder:
        identity = "new"
        def encode(self, texts):
            vectors = np.ones((len(texts), 64), dtype=np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    real = novelty.save_faiss
    def slow_save_faiss(index, path):  # the old reference is gone; die while the new index is staged
        real(index, path)
        print("staged", flush=True)
        time.sleep(60)

    novelty.save_faiss = slow_save_faiss
    index = novelty.NoveltyIndex.build(["a", "b"], Embedder())
    reference = Reference(task="generation", sources={"validation": 0, "test": 1}, instruction="", prompt_tokens=[3])
    write_run_reference(RunDir(sys.argv[1]), RunReference(reference, {}, index))
''')


def test_a_kill_while_the_reference_is_replaced_leaves_no_reference_and_the_old_index(tmp_path, word_hash_embedder):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    old = Reference(task="generation", sources={"validation": 0, "test": 2}, instruction="", prompt_tokens=[5, 6],
                    novelty=[0.1, 0.2], embedder=word_hash_embedder.identity, training_inputs=2)
    write_run_reference(run, RunReference(old, {}, NoveltyIndex.build(["x y", "z"], word_hash_embedder())))
    assert read_reference(run.reference) == old
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run.root)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert writer.stdout.readline().strip() == "staged"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert read_reference(run.reference) is None
    assert NoveltyIndex.load(run.novelty, word_hash_embedder()).size == 2


def test_a_reference_without_novelty_removes_the_old_index(tmp_path, word_hash_embedder):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    reference = Reference(task="generation", sources={"validation": 0, "test": 1}, instruction="", prompt_tokens=[4])
    write_run_reference(run, RunReference(reference, {}, NoveltyIndex.build(["x"], word_hash_embedder())))
    write_run_reference(run, RunReference(reference, {}, None))
    assert read_reference(run.reference) == reference and not run.novelty.exists()
    assert not [path.name for path in run.root.iterdir() if path.name != "reference.json"]


@pytest.mark.parametrize("leftover", [".novelty-staging-removed", "novelty.old"])
def test_an_interrupted_removal_is_finished_by_the_next(tmp_path, word_hash_embedder, leftover):
    run = RunDir(tmp_path / "run")
    (run.root / leftover).mkdir(parents=True)
    (run.root / leftover / "index.faiss").write_bytes(b"half")
    write_run_reference(run, None)
    assert not run.novelty.exists() and not (run.root / "novelty.old").exists()
