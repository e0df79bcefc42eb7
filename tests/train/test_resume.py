"""`tunesmith.train.resume`: the data files' fingerprint and the one-line refusals of a resume."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from tunesmith.config import DataConfig
from tunesmith.data.cache import hash_file
from tunesmith.errors import RunError
from tunesmith.run_dir import RunDir
from tunesmith.train.resume import check_same_data, data_fingerprint


def test_the_fingerprint_follows_the_contents_not_the_time(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n')
    config = DataConfig(train=str(data))
    first = data_fingerprint(config)
    data.write_text('{"text": "a", "label": "x"}\n')  # rewritten, the same bytes
    assert data_fingerprint(config) == first and list(first) == [str(data)]
    data.write_text('{"text": "b", "label": "x"}\n')
    assert data_fingerprint(config) != first


def test_a_process_reads_an_unchanged_data_file_once(tmp_path, monkeypatch):
    """A resume fingerprints its data twice (the pipeline checks it before writing, training before loading the
    model): the second time no file is read that did not change. A file changed moments ago is read every time."""
    import tunesmith.train.resume as resume

    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n')
    config = DataConfig(train=str(data))
    reads = []
    monkeypatch.setattr(resume, "hash_file", lambda digest, path: (reads.append(path), hash_file(digest, path)))
    first = data_fingerprint(config)
    assert data_fingerprint(config) == first and len(reads) == 2  # just written: a change might not show in its stat
    monkeypatch.setattr(resume, "time", SimpleNamespace(time=lambda: time.time() + 60))  # a minute later
    assert data_fingerprint(config) == first and data_fingerprint(config) == first and len(reads) == 3
    before = data.stat()
    time.sleep(0.05)  # past the file system's timestamp tick: the change time moves on
    data.write_text('{"text": "b", "label": "x"}\n')  # the same size
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same modification time
    assert data_fingerprint(config) != first and len(reads) == 4


@pytest.mark.parametrize(("now", "message"), [
    ({"a.jsonl": "1", "b.jsonl": "3"}, "cannot resume: b.jsonl, a data file of the run, is missing"),
    ({"a.jsonl": "1"}, "cannot resume: b.jsonl, a data file of the run, is no longer among its data files"),
    ({"a.jsonl": "1", "b.jsonl": "2", "c.jsonl": "4"},
     "cannot resume: c.jsonl is a data file the run did not train on"),
    ({"a.jsonl": "9", "c.jsonl": "4"},
     "cannot resume: a.jsonl, a data file of the run, is missing (and 2 other data files)"),
])
def test_each_change_of_the_data_files_is_one_line(tmp_path, monkeypatch, now, message):
    monkeypatch.chdir(tmp_path)  # a.jsonl and b.jsonl do not exist here
    with pytest.raises(RunError) as raised:
        check_same_data(RunDir("run"), {"a.jsonl": "1", "b.jsonl": "2"}, now)
    assert str(raised.value) == (f"{message} (put the files back as they were, or train on the new data in a new run "
                                 "(without --resume))")


def test_the_same_data_passes(tmp_path):
    check_same_data(RunDir(tmp_path), {"a.jsonl": "1"}, {"a.jsonl": "1"})
