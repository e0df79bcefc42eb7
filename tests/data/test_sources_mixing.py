"""`data.sources`: each source read with its own format and columns, split on its own, mixed by weight."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from tunesmith.config.loading import load_config
from tunesmith.config.schema import DataConfig
from tunesmith.data.sources import weight_rows
from tunesmith.data.splits import load_splits
from tunesmith.errors import ConfigError


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def sources_config(tmp_path, first_weight=1.0, second_weight=1.0, **data) -> DataConfig:
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl",
                         [{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(20)])
    chats = write_jsonl(tmp_path / "chats.jsonl", [
        {"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": f"hello {i}"}]}
        for i in range(10)
    ])
    return DataConfig(sources=[
        {"path": alpaca, "weight": first_weight, "system_prompt": "Be brief."},
        {"path": chats, "weight": second_weight},
    ], split={"validation": 0.1, "test": 0.2, "seed": 3}, **data)


def test_each_source_is_split_on_its_own_and_counted(tmp_path):
    splits = load_splits(sources_config(tmp_path))
    assert splits.format == "mixed"  # alpaca + sharegpt: evaluated as generation
    alpaca, chats = (str(tmp_path / name) for name in ("alpaca.jsonl", "chats.jsonl"))
    assert splits.sources == {
        alpaca: {"format": "alpaca", "weight": 1.0, "rows": 20, "train": 14, "train_weighted": 14,
                 "validation": 2, "test": 4},
        chats: {"format": "sharegpt", "weight": 1.0, "rows": 10, "train": 7, "train_weighted": 7,
                "validation": 1, "test": 2},
    }
    assert len(splits.train) == 21 and len(splits.validation) == 3 and len(splits.test) == 6
    by_file = Counter(example.source.rsplit(":", 1)[0] for example in splits.test)
    assert by_file == {alpaca: 4, chats: 2}
    # the source's own system prompt reaches its rows only
    first = next(e for e in splits.train if e.source.startswith(alpaca))
    assert first.messages[0] == {"role": "system", "content": "Be brief."}
    chat = next(e for e in splits.train if e.source.startswith(chats))
    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    # every split's rows are disjoint and the held-out rows do not depend on the weights
    sources = [{e.source for e in getattr(splits, name)} for name in ("train", "validation", "test")]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    reweighted = load_splits(sources_config(tmp_path, first_weight=0.5, second_weight=2.5))
    assert [e.source for e in reweighted.test] == [e.source for e in splits.test]


def test_weights_repeat_and_sample_training_rows(tmp_path):
    splits = load_splits(sources_config(tmp_path, first_weight=0.5, second_weight=2.5))
    counts = {path: entry["train_weighted"] for path, entry in splits.sources.items()}
    assert list(counts.values()) == [7, 7 * 2 + 4]  # 14 * 0.5 = 7; 7 * 2 + round(7 * 0.5) = 18
    chats = Counter(e.source for e in splits.train if "chats" in e.source)
    assert sorted(chats.values()) == [2, 2, 2, 3, 3, 3, 3]
    again = load_splits(sources_config(tmp_path, first_weight=0.5, second_weight=2.5))
    assert [e.source for e in again.train] == [e.source for e in splits.train]  # seeded


def test_weight_rows_marks_repeats_and_samples_without_replacement():
    from tunesmith.data.example import Example

    rows = [Example(messages=({"role": "assistant", "content": str(i)},), source=f"f:{i}") for i in range(10)]
    assert weight_rows(rows, 1.0, "s") == rows
    assert weight_rows(rows, 0.0, "s") == []
    half = weight_rows(rows, 0.3, "s")
    assert len(half) == 3 and len({e.source for e in half}) == 3
    doubled = weight_rows(rows, 2.0, "s")
    assert [e.meta.get("mix_copy") for e in doubled] == [None] * 10 + [1] * 10


def test_classification_sources_share_the_union_of_labels(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": f"a{i}", "label": ["x", "y"][i % 2]} for i in range(10)])
    second = write_jsonl(tmp_path / "b.jsonl", [{"sms": f"b{i}", "kind": ["y", "z"][i % 2]} for i in range(10)])
    config = DataConfig(sources=[{"path": first}, {"path": second, "columns": {"text": "sms", "label": "kind"}}],
                        split={"validation": 0.1, "test": 0.1})
    splits = load_splits(config)
    assert splits.format == "classification" and splits.labels == ["x", "y", "z"]
    assert all("one of: x, y, z." in e.messages[-2]["content"] for e in splits.train)


def test_zero_weights_everywhere_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.sources"):
        load_splits(sources_config(tmp_path, first_weight=0, second_weight=0))


def test_a_tiny_source_names_itself_in_the_split_error(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "p", "completion": "c"}] * 3)
    with pytest.raises(ConfigError, match=r"data.sources\[0\].path"):
        load_splits(DataConfig(sources=[{"path": path}]))


def test_source_paths_and_template_files_are_relative_to_the_config(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    config_file = folder / "run.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": {"chat_template": "templates/mine.jinja"},
        "data": {"sources": [{"path": "data/a.jsonl"}, {"path": "/abs/b.jsonl", "weight": 2}]},
    }), encoding="utf-8")
    config = load_config(config_file)
    assert [s.path for s in config.data.sources] == [str(folder / "data" / "a.jsonl"), "/abs/b.jsonl"]
    assert config.model.chat_template == str(folder / "templates" / "mine.jinja")
    config_file.write_text(yaml.safe_dump({"model": {"chat_template": "chatml"}, "data": {"train": "t.jsonl"}}))
    assert load_config(config_file).model.chat_template == "chatml"


def test_weighted_repeats_are_not_reported_as_duplicates(tmp_path, tiny_tokenizer):
    import json as _json

    from tunesmith.data.check import check_data

    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(_json.dumps({"prompt": f"Tell me fact {i} about owls.", "completion": f"Fact {i}."})
                              for i in range(20)) + "\n", encoding="utf-8")
    config = DataConfig(sources=[{"path": str(path), "weight": 3}], split={"validation": 0.0, "test": 0.0})
    splits = load_splits(config)
    assert len(splits.train) == 60
    report = check_data(splits, tiny_tokenizer, max_length=64)
    assert not [f for f in report.findings if f.kind in ("duplicate", "near_duplicate")]
    assert report.splits[0].rows == 20
