"""`tunesmith.train.resume`: the data files' fingerprint and the one-line refusals of a resume."""

from __future__ import annotations

import pytest

from tunesmith.config import DataConfig
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
