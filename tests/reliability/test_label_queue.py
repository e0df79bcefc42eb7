"""The labeling queue under faults: annotators in many threads and processes at once never lose or double an
annotation; a writer killed with SIGKILL mid-annotation leaves a readable, consistent queue; hostile text is stored
and returned verbatim; a full disk is one clear error that keeps what was committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.label import store
from tunesmith.label.store import LabelConflict, LabelError, LabelQueue

SOURCE = str(Path(__file__).resolve().parents[2] / "src")

ANNOTATE_ALL = """
import sys
from tunesmith.label.store import LabelConflict, LabelQueue
queue = LabelQueue.open(sys.argv[1])
for name in sys.argv[2:]:
    while (item := queue.next_item(name)) is not None:
        try:
            queue.annotate(item.id, name, "spam" if item.id % 2 else "ham")
        except LabelConflict:
            pass  # a twin process took it first: the next call moves on
        print(name, item.id, flush=True)
"""


def python(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", *args], env={**os.environ, "PYTHONPATH": SOURCE},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


def assert_consistent(queue: LabelQueue, annotators: list[str]) -> None:
    pairs = Counter((a.item_id, a.annotator) for a in queue.annotations())
    assert max(pairs.values()) == 1, "an annotation was doubled"
    assert set(pairs) == {(item.id, name) for item in queue.items() for name in annotators}, "one was lost"


def test_annotators_in_many_threads_never_lose_or_double_an_annotation(make_queue):
    queue = make_queue(40)
    conflicts = Counter()
    # two threads per annotator race for the same items: one of each pair wins, the other gets a conflict
    names = ["ann", "ann", "bob", "bob", "cid", "cid"]

    def work(name: str) -> None:
        while (item := queue.next_item(name)) is not None:
            try:
                queue.annotate(item.id, name, "ham")
            except LabelConflict:
                conflicts[name] += 1

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert_consistent(queue, ["ann", "bob", "cid"])
    assert all(queue.progress(name) == (40, 40) for name in ("ann", "bob", "cid"))


def test_annotators_in_several_processes(make_queue):
    queue = make_queue(30)
    workers = [python(ANNOTATE_ALL, str(queue.path), *names) for names in (["ann"], ["ann"], ["bob", "cid"])]
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors
    assert_consistent(LabelQueue.open(queue.path), ["ann", "bob", "cid"])


def test_a_writer_killed_mid_annotation_leaves_a_consistent_queue(make_queue):
    queue = make_queue(3000)
    writer = python(ANNOTATE_ALL, str(queue.path), "ann")
    try:
        for _ in range(20):  # a few annotations in: the kill lands between or inside transactions
            assert writer.stdout.readline(), writer.stderr.read()
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL
    reopened = LabelQueue.open(queue.path)
    done = sorted(a.item_id for a in reopened.annotations())
    assert len(done) >= 20 and done == list(range(1, len(done) + 1)), "annotated items are a prefix of the queue"
    assert reopened.next_item("ann").id == len(done) + 1
    reopened.annotate(len(done) + 1, "ann", "spam")  # it goes on where the killed writer stopped
    with sqlite3.connect(queue.path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


HOSTILE = [
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "'; DROP TABLE annotations; --",
    "\u202eevil\u202c right-to-left, \u200bzero width, e\u0301 combining",
    "nul \x00 in the middle\r\nand CRLF\tand \x1b[31m ANSI",
    "emoji 🎉 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "  leading and trailing spaces  ",
    "x" * 100_000,
]


def test_hostile_text_is_stored_and_returned_verbatim(tmp_path, queue_meta):
    items = [{"request_id": f"r{i}", "input": text, "messages": [{"role": "user", "content": text}],
              "prediction": text, "reason": text, "teacher_suggestion": text, "teacher_error": text}
             for i, text in enumerate(HOSTILE)]
    queue = LabelQueue.create(tmp_path / "q.db", queue_meta("generation", None), items)
    for item, text in zip(queue.items(), HOSTILE):
        assert (item.input, item.messages[0]["content"], item.prediction, item.reason, item.teacher_suggestion,
                item.teacher_error) == (text, text, text, text, text, text)
        queue.annotate(item.id, "<b>ann</b>", text)
    assert [a.value for a in LabelQueue.open(tmp_path / "q.db").annotations()] == HOSTILE
    assert [a.annotator for a in queue.annotations()] == ["<b>ann</b>"] * len(HOSTILE)
    with pytest.raises(LabelError, match="not valid Unicode"):
        queue.annotate(1, "bob", "lone \ud800 surrogate")


def test_a_full_disk_is_one_clear_error_and_keeps_what_was_committed(make_queue, monkeypatch):
    queue = make_queue(200, task="generation", labels=None)
    path = queue.path
    queue.close()
    pages = os.path.getsize(path) // 4096 + 8
    real_connect = sqlite3.connect

    def small_disk(*args, **kwargs):  # SQLite's own "database or disk is full", as on a full filesystem
        connection = real_connect(*args, **kwargs)
        connection.execute(f"PRAGMA max_page_count={pages}")
        return connection

    monkeypatch.setattr(store.sqlite3, "connect", small_disk)
    queue = LabelQueue.open(path)
    written = 0
    with pytest.raises(LabelError) as caught:
        for item in queue.items():
            queue.annotate(item.id, "ann", f"answer {item.id} " + "long text " * 400)
            written += 1
    message = str(caught.value)
    assert message == (f"the disk is full: writing {path} failed; every annotation committed before is intact "
                       "(free some space and try again)")
    assert written > 0
    queue.close()
    monkeypatch.setattr(store.sqlite3, "connect", real_connect)
    reopened = LabelQueue.open(path)
    assert len(reopened.annotations()) == written and reopened.next_item("ann").id == written + 1


def test_a_full_disk_while_creating_leaves_no_half_queue(tmp_path, queue_meta, monkeypatch):
    real_connect = sqlite3.connect

    def full(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        connection.execute("PRAGMA max_page_count=4")
        return connection

    monkeypatch.setattr(store.sqlite3, "connect", full)
    items = [{"request_id": f"r{i}", "input": "text " * 500, "reason": "r"} for i in range(50)]
    with pytest.raises(LabelError, match="the disk is full"):
        LabelQueue.create(tmp_path / "q.db", queue_meta(), items)
    assert list(tmp_path.iterdir()) == []


def test_a_busy_queue_waits_for_the_writer(make_queue):
    queue = make_queue(2)
    holder = sqlite3.connect(queue.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    done = threading.Event()
    thread = threading.Thread(target=lambda: (queue.annotate(1, "ann", "ham"), done.set()))
    thread.start()
    time.sleep(0.3)
    assert not done.is_set()
    holder.execute("COMMIT")
    thread.join(30)
    assert done.is_set() and queue.progress("ann") == (1, 2)
