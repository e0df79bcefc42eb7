"""Files → Splits: seeded, disjoint, correctly sized splits; carving missing splits; caps; label sets; real data;
`data.sources` (each source read with its own settings, split on its own, mixed by weight); the streaming route;
and a run's splits read afresh at every call (`load_run_splits`)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.splits import load_run_splits, load_splits, weight_rows
from tunesmith.errors import ConfigError, DataError


def numbered(count, start=0):
    return [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(start, start + count)]


def lines(examples):
    return [int(example.location.rsplit(":", 1)[1]) for example in examples]


def test_path_is_split_deterministically_disjoint_and_sized_by_the_fractions(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "all.jsonl", numbered(20))
    cfg = DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": 3})
    splits = load_splits(cfg)
    train, validation, test = lines(splits.train), lines(splits.validation), lines(splits.test)
    assert (len(train), len(validation), len(test)) == (14, 2, 4)
    assert sorted(train + validation + test) == list(range(1, 21))
    assert all(part == sorted(part) for part in (train, validation, test))  # each split keeps file order
    again = load_splits(cfg)
    assert (lines(again.train), lines(again.validation), lines(again.test)) == (train, validation, test)
    other = load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": 4}))
    assert lines(other.test) != test
    assert splits.format == "prompt_completion" and splits.labels is None
    assert splits.files == {"train": path, "validation": path, "test": path}
    assert splits.test[0].messages[0]["content"] == f"question {test[0] - 1}"


def test_fractions_round_half_up(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "all.jsonl", numbered(10))
    splits = load_splits(DataConfig(path=path, split={"validation": 0.25, "test": 0.15}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (5, 3, 2)


def test_train_only_carves_validation_and_test(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "train.jsonl", numbered(10))
    splits = load_splits(DataConfig(train=path))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (8, 1, 1)
    assert splits.files == {"train": path, "validation": path, "test": path}


def test_train_and_test_files_carve_only_validation(tmp_path, write_jsonl):
    train = write_jsonl(tmp_path / "train.jsonl", numbered(10))
    test = write_jsonl(tmp_path / "test.jsonl", numbered(3, start=100))
    splits = load_splits(DataConfig(train=train, test=test, split={"validation": 0.2}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (8, 2, 3)
    assert lines(splits.test) == [1, 2, 3] and splits.test[0].location == f"{test}:1"
    assert sorted(lines(splits.train) + lines(splits.validation)) == list(range(1, 11))
    assert splits.files == {"train": train, "validation": train, "test": test}


def test_all_three_files_are_used_as_they_are(tmp_path, write_jsonl):
    files = {name: write_jsonl(tmp_path / f"{name}.jsonl", numbered(n)) for name, n in
             [("train", 4), ("validation", 2), ("test", 3)]}
    splits = load_splits(DataConfig(**files))
    assert (lines(splits.train), lines(splits.validation), lines(splits.test)) == ([1, 2, 3, 4], [1, 2], [1, 2, 3])


def test_zero_fraction_gives_an_empty_split_but_a_too_small_one_is_an_error(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "all.jsonl", numbered(4))
    splits = load_splits(DataConfig(path=path, split={"validation": 0.0, "test": 0.25}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (3, 0, 1)
    with pytest.raises(ConfigError) as caught:
        load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.25}))
    assert str(caught.value) == (
        "config: data.split.validation: 0.1 of the 4 rows of data.path is less than one row (raise it, add rows, "
        "give a validation file, or set it to 0 to have no validation rows)"
    )
    with pytest.raises(ConfigError, match="leaves none of the 4 rows of data.path to train on"):
        load_splits(DataConfig(path=path, split={"validation": 0.5, "test": 0.5}))


def test_row_caps(tmp_path, write_jsonl):
    train = write_jsonl(tmp_path / "train.jsonl", numbered(10))
    validation = write_jsonl(tmp_path / "validation.jsonl", numbered(5))
    test = write_jsonl(tmp_path / "test.jsonl", numbered(5))
    cfg = DataConfig(train=train, validation=validation, test=test, max_train_rows=4, max_eval_rows=2)
    splits = load_splits(cfg)
    sampled = lines(splits.train)
    assert len(sampled) == 4 and sampled == sorted(sampled) and len(set(sampled)) == 4
    assert lines(load_splits(cfg).train) == sampled
    assert (lines(splits.validation), lines(splits.test)) == ([1, 2], [1, 2])


def test_label_set_covers_every_split_and_label_names_fix_the_order(tmp_path, write_jsonl):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "c", "label": "neutral"}])
    validation = write_jsonl(tmp_path / "validation.jsonl", [{"text": "d", "label": "pos"}])
    splits = load_splits(DataConfig(train=train, validation=validation, test=test))
    assert splits.format == "classification" and splits.labels == ["neg", "neutral", "pos"]
    named = load_splits(DataConfig(train=train, validation=validation, test=test,
                                   label_names=["pos", "neutral", "neg"]))
    assert named.labels == ["pos", "neutral", "neg"]
    assert named.train[0].messages[0]["content"] == (
        "Classify the following text. Answer with one of: pos, neutral, neg.\n\na"
    )


def test_real_sms_spam_int_labels_and_mapped_label_text(shared_data):
    path = str(shared_data / "sms_spam_train.jsonl")
    splits = load_splits(DataConfig(path=path))
    assert (splits.format, splits.labels) == ("classification", ["0", "1"])
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (3660, 457, 457)
    every = splits.train + splits.validation + splits.test
    assert sum(example.label == "1" for example in every) == 603  # the spam count of `tunesmith init` in docs/data.md
    named = load_splits(DataConfig(path=path, columns={"label": "label_text"}))
    assert named.labels == ["ham", "spam"]
    assert sum(example.label == "spam" for example in named.train + named.validation + named.test) == 603
    first = min(named.train + named.validation + named.test, key=lambda e: int(e.location.rsplit(":", 1)[1]))
    assert first.messages == (
        {"role": "user", "content": "Classify the following text. Answer with one of: ham, spam.\n\nGo until jurong "
         "point, crazy.. Available only in bugis n great world la e buffet... Cine there got amore wat..."},
        {"role": "assistant", "content": "ham"},
    )


@pytest.fixture()
def sources_config(tmp_path, write_jsonl):
    """``sources_config(first_weight, second_weight, **data)``: an alpaca file and a ShareGPT file as sources."""
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl",
                         [{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(20)])
    chats = write_jsonl(tmp_path / "chats.jsonl", [
        {"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": f"hello {i}"}]}
        for i in range(10)
    ])

    def make(first_weight=1.0, second_weight=1.0, **data) -> DataConfig:
        return DataConfig(sources=[
            {"path": alpaca, "weight": first_weight, "system_prompt": "Be brief."},
            {"path": chats, "weight": second_weight},
        ], split={"validation": 0.1, "test": 0.2, "seed": 3}, **data)

    return make


def test_each_source_is_split_on_its_own_and_counted(tmp_path, sources_config):
    splits = load_splits(sources_config())
    assert splits.format == "mixed"  # alpaca + sharegpt: evaluated as generation
    alpaca, chats = (str(tmp_path / name) for name in ("alpaca.jsonl", "chats.jsonl"))
    assert splits.sources == {
        alpaca: {"format": "alpaca", "weight": 1.0, "rows": 20, "train": 14, "train_weighted": 14,
                 "validation": 2, "test": 4},
        chats: {"format": "sharegpt", "weight": 1.0, "rows": 10, "train": 7, "train_weighted": 7,
                "validation": 1, "test": 2},
    }
    assert len(splits.train) == 21 and len(splits.validation) == 3 and len(splits.test) == 6
    by_file = Counter(example.location.rsplit(":", 1)[0] for example in splits.test)
    assert by_file == {alpaca: 4, chats: 2}
    # the source's own system prompt reaches its rows only
    first = next(e for e in splits.train if e.location.startswith(alpaca))
    assert first.messages[0] == {"role": "system", "content": "Be brief."}
    chat = next(e for e in splits.train if e.location.startswith(chats))
    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    # every split's rows are disjoint and the held-out rows do not depend on the weights
    sources = [{e.location for e in getattr(splits, name)} for name in ("train", "validation", "test")]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    reweighted = load_splits(sources_config(first_weight=0.5, second_weight=2.5))
    assert [e.location for e in reweighted.test] == [e.location for e in splits.test]


def test_weights_repeat_and_sample_training_rows(tmp_path, sources_config):
    splits = load_splits(sources_config(first_weight=0.5, second_weight=2.5))
    counts = {path: entry["train_weighted"] for path, entry in splits.sources.items()}
    assert list(counts.values()) == [7, 7 * 2 + 4]  # 14 * 0.5 = 7; 7 * 2 + round(7 * 0.5) = 18
    chats = Counter(e.location for e in splits.train if "chats" in e.location)
    assert sorted(chats.values()) == [2, 2, 2, 3, 3, 3, 3]
    again = load_splits(sources_config(first_weight=0.5, second_weight=2.5))
    assert [e.location for e in again.train] == [e.location for e in splits.train]  # seeded


def test_weight_rows_marks_repeats_and_samples_without_replacement():
    from tunesmith.data.example import Example

    rows = [Example(messages=({"role": "assistant", "content": str(i)},), location=f"f:{i}") for i in range(10)]
    assert weight_rows(rows, 1.0, "s") == rows
    assert weight_rows(rows, 0.0, "s") == []
    half = weight_rows(rows, 0.3, "s")
    assert len(half) == 3 and len({e.location for e in half}) == 3
    doubled = weight_rows(rows, 2.0, "s")
    assert [e.meta.get("mix_copy") for e in doubled] == [None] * 10 + [1] * 10


def test_classification_sources_share_the_union_of_labels(tmp_path, write_jsonl):
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": f"a{i}", "label": ["x", "y"][i % 2]} for i in range(10)])
    second = write_jsonl(tmp_path / "b.jsonl", [{"sms": f"b{i}", "kind": ["y", "z"][i % 2]} for i in range(10)])
    config = DataConfig(sources=[{"path": first}, {"path": second, "columns": {"text": "sms", "label": "kind"}}],
                        split={"validation": 0.1, "test": 0.1})
    splits = load_splits(config)
    assert splits.format == "classification" and splits.labels == ["x", "y", "z"]
    assert all("one of: x, y, z." in e.messages[-2]["content"] for e in splits.train)


def test_a_test_file_beside_sources_is_the_test_split(tmp_path, sources_config, write_jsonl):
    test = write_jsonl(tmp_path / "gold.jsonl", [{"instruction": f"Gold {i}.", "output": f"{i}"} for i in range(7)])
    splits = load_splits(sources_config(test=test))
    assert [e.location for e in splits.test] == [f"{test}:{line}" for line in range(1, 8)]
    alpaca, chats = (str(tmp_path / name) for name in ("alpaca.jsonl", "chats.jsonl"))
    # the sources are cut for validation only: their test fraction stays in training
    assert {path: (entry["train"], entry["validation"], entry["test"]) for path, entry in splits.sources.items()} == {
        alpaca: (18, 2, 0), chats: (9, 1, 0)}
    assert len(splits.validation) == 3 and splits.files["test"] == test
    assert splits.files["train"] == splits.files["validation"] == f"{alpaca}, {chats}"
    assert splits.test[0].messages[-2]["content"] == "Gold 0."  # read with the data.* settings


def test_validation_and_test_files_beside_sources_leave_every_source_row_to_train(tmp_path, write_jsonl):
    old = write_jsonl(tmp_path / "old.jsonl", [{"sms": f"old {i}", "category": "xy"[i % 2]} for i in range(20)])
    new = write_jsonl(tmp_path / "new.jsonl", [{"text": f"new {i}", "label": "y"} for i in range(5)])
    validation = write_jsonl(tmp_path / "v.jsonl", [{"text": "v", "label": "x"}])
    test = write_jsonl(tmp_path / "t.jsonl", [{"text": "t", "label": "z"}])  # a label only the test file has
    mapped = {"text": "sms", "label": "category"}
    splits = load_splits(DataConfig(sources=[{"path": old, "columns": mapped}, {"path": new}],
                                    validation=validation, test=test))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (25, 1, 1)
    assert splits.format == "classification" and splits.labels == ["x", "y", "z"]
    assert splits.test[0].label == "z" and "one of: x, y, z." in splits.test[0].messages[-2]["content"]


def test_a_held_out_file_is_read_in_the_format_of_the_sources(tmp_path, sources_config, write_jsonl):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)])
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"instruction": "Say 1.", "output": "1"}])
    with pytest.raises(DataError, match=f"{wrong}:1: missing key 'prompt'"):
        load_splits(DataConfig(sources=[{"path": prompts}], test=wrong))
    mixed = load_splits(sources_config(test=wrong))  # mixed sources: the file's own format
    assert mixed.format == "mixed" and len(mixed.test) == 1


def test_zero_weights_everywhere_is_a_config_error(tmp_path, sources_config):
    with pytest.raises(ConfigError, match="data.sources"):
        load_splits(sources_config(first_weight=0, second_weight=0))


def test_a_tiny_source_names_itself_in_the_split_error(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "p", "completion": "c"}] * 3)
    with pytest.raises(ConfigError, match=r"data.sources\[0\].path"):
        load_splits(DataConfig(sources=[{"path": path}]))


def test_a_source_with_no_readable_row_is_one_error_naming_its_first_bad_line(tmp_path, write_jsonl):
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)])
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{oops", "[1, 2]", '"text"'])
    config = DataConfig(sources=[{"path": good}, {"path": bad}])
    errors: list[DataError] = []
    with pytest.raises(DataError) as caught:
        load_splits(config, on_error=errors.append)
    assert (caught.value.file, caught.value.line) == (bad, 1)
    assert "no row of" in str(caught.value) and "3 bad rows" in str(caught.value)
    assert [error.line for error in errors] == [1, 2, 3]  # each was listed before the load gave up


def test_streaming_reads_only_the_held_out_files(tmp_path, write_jsonl):
    labels = ["ham", "spam", "eggs"]
    files = {name: write_jsonl(tmp_path / f"{name}.jsonl",
                               [{"text": f"{name} {i}", "label": labels[i % 3]} for i in range(n)])
             for name, n in (("train", 50), ("validation", 4), ("test", 5))}
    splits = load_run_splits(DataConfig(**files, streaming=True))
    assert splits.train == [] and len(splits.validation) == 4 and len(splits.test) == 5
    assert splits.labels == ["eggs", "ham", "spam"] and splits.format == "classification"


def test_run_splits_are_read_from_the_files_at_every_call(tmp_path, write_jsonl):
    """No memo across calls (a run's stages share one load through `RunInputs`): a changed file is read again."""
    path = write_jsonl(tmp_path / "all.jsonl", numbered(20))
    config = DataConfig(path=path)
    first = load_run_splits(config)
    write_jsonl(tmp_path / "all.jsonl", numbered(21))
    changed = load_run_splits(config)
    assert changed is not first and len(changed.train) + len(changed.validation) + len(changed.test) == 21


# ---- preference pairs: the pairs of one prompt stay in one split ----------------------------------------------


def pairs_of_prompts(prompts: int, per_prompt: int) -> list[dict]:
    return [{"prompt": f"question {p}", "chosen": f"good {p}.{k}", "rejected": f"bad {p}.{k}"}
            for p in range(prompts) for k in range(per_prompt)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_pairs_of_one_prompt_never_straddle_splits(tmp_path, write_jsonl, seed):
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs_of_prompts(12, 3))
    splits = load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": seed}))
    prompts = {name: {e.messages[-2]["content"] for e in getattr(splits, name)} for name in ("train", "validation",
                                                                                          "test")}
    assert splits.format == "preference"
    assert not prompts["train"] & prompts["test"] and not prompts["train"] & prompts["validation"]
    assert not prompts["validation"] & prompts["test"]
    assert len(splits.test) >= 7 and len(splits.validation) >= 4  # whole prompts, at least the share of rows
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 36
    assert all(len([e for e in getattr(splits, name) if e.messages[-2]["content"] == prompt]) == 3
               for name in prompts for prompt in prompts[name])


def test_a_prompt_with_a_system_field_or_another_shape_is_one_group(tmp_path, write_jsonl):
    rows = [{"prompt": "question 0", "chosen": "a", "rejected": "b"},
            {"prompt": [{"role": "user", "content": "question 0"}], "chosen": "c", "rejected": "d"},
            {"prompt": "question 1", "chosen": "a", "rejected": "b", "system": "S"}]
    rows += pairs_of_prompts(10, 1)[2:]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    for seed in range(6):
        splits = load_splits(DataConfig(path=path, split={"validation": 0, "test": 0.3, "seed": seed}))
        firsts = [name for name in ("train", "test") for e in getattr(splits, name)
                  if e.location.endswith((":1", ":2"))]
        assert len(set(firsts)) == 1


def test_holding_out_whole_prompts_may_leave_none_to_train_on(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs_of_prompts(2, 3))
    with pytest.raises(ConfigError, match=r"data\.split: the 2 prompts of data\.path cannot be held out without "
                                          "leaving none to train on"):
        load_splits(DataConfig(path=path, split={"validation": 0.3, "test": 0.3}))


def test_other_formats_split_row_by_row_as_before(tmp_path, write_jsonl):
    # the same prompt in every row: ungrouped formats still spread it over the splits
    path = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "same", "completion": f"answer {i}"} for i in range(20)])
    splits = load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": 3}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (14, 2, 4)


def test_pairs_are_read_from_every_file_type(tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    conversational = [{"prompt": [{"role": "user", "content": f"q{i}"}],
                       "chosen": [{"role": "assistant", "content": f"good {i}"}],
                       "rejected": [{"role": "assistant", "content": f"bad {i}"}]} for i in range(3)]
    flat = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(3)]
    (tmp_path / "d.json").write_text(json.dumps(conversational))
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in flat).encode()))
    (tmp_path / "d.csv").write_text("prompt,chosen,rejected\n" + "".join(f"q{i},good {i},bad {i}\n" for i in range(3)))
    pq.write_table(pa.Table.from_pylist(conversational), tmp_path / "d.parquet")
    for name in ("d.json", "d.jsonl.gz", "d.csv", "d.parquet"):
        splits = load_splits(DataConfig(train=str(tmp_path / name), split={"validation": 0, "test": 0}))
        assert splits.format == "preference", name
        assert [(e.messages, e.rejected["content"]) for e in splits.train] == [
            (({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"good {i}"}), f"bad {i}")
            for i in range(3)], name
