"""Streaming mode: the same tokenized rows as the in-memory path, read back memory-mapped; config guards."""

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.cache import TokenizedRows, tokenized_split
from tunesmith.data.readers import iter_rows
from tunesmith.data.splits import load_heldout_splits, load_splits
from tunesmith.data.stream import stream_train_rows
from tunesmith.errors import ConfigError, DataError

TASK = ("classification", ["eggs", "ham", "spam"])


@pytest.fixture()
def files(tmp_path, monkeypatch, write_jsonl):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    labels = ["ham", "spam", "eggs"]

    def make(n, offset):
        return [{"text": f"message number {i + offset}", "label": labels[i % 3]} for i in range(n)]

    return {name: write_jsonl(tmp_path / f"{name}.jsonl", make(n, offset))
            for name, n, offset in (("train", 2_500, 0), ("validation", 20, 10_000), ("test", 30, 20_000))}


def test_streamed_rows_equal_the_in_memory_path(files, tiny_tokenizer):
    config = DataConfig(**files, streaming=True, max_length=40)
    streamed, stats = stream_train_rows(config, *TASK, tiny_tokenizer)
    in_memory_config = DataConfig(**files, max_length=40, cache=False)
    expected, expected_stats = tokenized_split(in_memory_config, "train", load_splits(in_memory_config).train,
                                               tiny_tokenizer)
    assert isinstance(streamed, TokenizedRows) and len(streamed) == 2_500
    for index in (0, 1, 999, 1_000, 2_499):  # across the streamed batches
        assert (streamed[index].input_ids, streamed[index].labels, streamed[index].location) == \
            (expected[index].input_ids, expected[index].labels, expected[index].location)
    assert list(streamed.lengths) == [len(row.input_ids) for row in expected]
    assert stats == expected_stats


def test_second_streaming_run_loads_the_cache(files, tiny_tokenizer, caplog):
    caplog.set_level("INFO", logger="tunesmith")
    config = DataConfig(**files, streaming=True)
    stream_train_rows(config, *TASK, tiny_tokenizer)
    rows, _ = stream_train_rows(config, *TASK, tiny_tokenizer)
    assert "loaded 2500 tokenized train rows from cache" in caplog.text and len(rows) == 2_500


@pytest.mark.parametrize("settings", [{"validation": None}, {"test": None}, {"max_train_rows": 10}])
def test_streaming_refuses_what_needs_every_row(files, tiny_tokenizer, settings):
    config = DataConfig(**{**files, **settings}, streaming=True)
    with pytest.raises(ConfigError) as error:
        stream_train_rows(config, *TASK, tiny_tokenizer)
    assert error.value.key == "data.streaming"


def test_streaming_reports_bad_lines_with_their_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n\n{"text": "broken"\n')
    with pytest.raises(DataError) as error:
        list(iter_rows(path))
    assert error.value.line == 3


def test_a_bad_row_mid_stream_is_a_data_error(files, tiny_tokenizer, tmp_path):
    bad = tmp_path / "bad_train.jsonl"
    bad.write_text(open(files["train"], encoding="utf-8").read() + '{"text": "x", "label": ["no"]}\n',
                   encoding="utf-8")
    with pytest.raises(DataError) as error:
        stream_train_rows(DataConfig(**{**files, "train": str(bad)}, streaming=True), *TASK, tiny_tokenizer)
    assert error.value.line == 2_501


def test_training_reads_streamed_rows(files, tiny_model_dir, tmp_path):
    from tunesmith.config import validate_config
    from tunesmith.data.check.data_report import CheckSettings, check_data
    from tunesmith.data.run_inputs import RunInputs
    from tunesmith.models import load_tokenizer
    from tunesmith.run_dir import RunDir
    from tunesmith.train import train

    config = validate_config({
        "model": {"name": str(tiny_model_dir)}, "data": {**files, "streaming": True, "max_length": 160},
        "lora": {"r": 2, "alpha": 4}, "train": {"batch_size": 4, "max_steps": 2, "eval_every": 2, "save_every": 2},
    })
    splits = load_heldout_splits(config.data)
    check_data(splits, CheckSettings(load_tokenizer(config.model), 160))  # the pipeline checks the held-out files only
    summary = train(config, RunDir(tmp_path / "run"), RunInputs(config, splits))
    assert summary["train_rows"] == 2_500 and summary["validation_rows"] == 20 and summary["steps"] == 2
    assert summary["truncation"]["rows"] == 2_500
