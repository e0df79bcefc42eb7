"""The data check of preference pairs: identical answers, an empty side, a truncated rejected answer, a prompt of
the gold test set; pairs sharing a prompt are not duplicates; `data check` of a pair file and its exit code."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import (
    CheckSettings,
    ExamplesToCheck,
    check_examples,
    read_file_as_split,
    run_check,
)
from tunesmith.data.check.pair_checks import GoldTest, gold_test_of
from tunesmith.data.example import Example
from tunesmith.errors import DataError
from tunesmith.run_dir import RunDir


def pair(location: str, prompt: str, chosen: str, rejected: str, system: str | None = None) -> Example:
    turns = ({"role": "system", "content": system},) if system else ()
    return Example(messages=(*turns, {"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}),
                   location=location, rejected={"role": "assistant", "content": rejected})


def report_of(tokenizer, pairs: list[Example], gold: GoldTest | None = None, max_length: int = 512):
    checked = ExamplesToCheck(named={"train": pairs}, format="preference", labels=None, files={"train": "p.jsonl"})
    report = check_examples(checked, CheckSettings(tokenizer, max_length, gold=gold))
    return {finding.kind: finding for finding in report.findings}, report


def test_planted_pair_problems_are_found(tiny_tokenizer):
    pairs = [
        pair("p.jsonl:1", "Name a colour.", "Blue.", "I cannot say."),
        pair("p.jsonl:2", "Name a colour.", "Blue.", "Blue. "),  # identical answers
        pair("p.jsonl:3", "Name a fruit.", "Apple.", " "),  # an empty rejected side
        pair("p.jsonl:4", "Name a city.", "", "Paris is a city in France."),  # an empty chosen side
        pair("p.jsonl:5", "Name a colour.", "Blue.", "Red."),  # same prompt and chosen, other rejected: no duplicate
        pair("p.jsonl:6", "What is 2 + 2?", "4", "5", system="Be brief."),  # a prompt of the gold test set
    ]
    gold = GoldTest.of("sft test", [pair("gold.jsonl:7", "what is 2+2", "4", "")])
    found, _ = report_of(tiny_tokenizer, pairs, gold)
    assert found["identical_pair"].locations == ["p.jsonl:2"]
    assert found["empty_side"].locations == ["p.jsonl:3 (rejected empty)", "p.jsonl:4 (chosen empty)"]
    assert found["gold_leakage"].locations == ["p.jsonl:6 (prompt of gold.jsonl:7)"]
    assert found["gold_leakage"].split == "train/sft test"
    assert found["gold_leakage"].message == ("1 pair of train whose prompt is in the gold test set (sft test): the "
                                             "task metrics re-measured there overstate the model")
    assert "duplicate" not in found and "empty_output" not in found and "near_duplicate" not in found


def test_a_truncated_rejected_answer_is_reported(tiny_tokenizer):
    long = "a very long and rambling answer " * 40
    found, _ = report_of(tiny_tokenizer, [pair("p.jsonl:1", "Name a colour.", "Blue.", long)], max_length=40)
    assert found["truncated"].locations[0].startswith("p.jsonl:1 (") and "rejected answer" in found["truncated"].message


def test_a_pair_file_is_checked_and_a_bad_row_is_listed_as_unreadable(tmp_path, tiny_model_dir):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I cannot say."}) + "\n"
                    + json.dumps({"prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Apple."}) + "\n"
                    + json.dumps({"prompt": "Name a city.", "chosen": "Paris."}) + "\n")
    text, code = run_check(str(path), [f"model.name={tiny_model_dir}"], True)
    report = json.loads(text)
    assert report["format"] == "preference" and code == 2
    assert [f["kind"] for f in report["findings"]] == ["identical_pair"]
    (unreadable,) = report["unreadable"]
    assert unreadable.startswith(f"{path}:3: missing key 'rejected' for format preference; the row has keys: "
                                 "prompt, chosen")
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: missing key 'rejected'"):  # strict reading stops there
        read_file_as_split(path, DataConfig(path=str(path)))


def test_the_gold_test_set_is_the_init_from_runs_test_split(tmp_path, write_jsonl, tiny_model_dir):
    data = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": f"question {i}", "completion": f"answer {i}"}
                                                for i in range(10)])
    sft = RunDir(tmp_path / "sft")
    sft.root.mkdir()
    config = validate_config({"model": {"name": str(tiny_model_dir)},
                              "data": {"path": data, "split": {"validation": 0.1, "test": 0.2}}})
    save_config(config, sft.config_path)
    # `model.init_from` is read where it exists (the INIT engineer's field): a stand-in config carries it here
    gold = gold_test_of(SimpleNamespace(model=SimpleNamespace(init_from=str(sft.root))))
    assert gold.name == "sft test" and len(gold.prompts) == 2
    assert all(location.startswith(data + ":") for location in gold.prompts.values())
    assert gold_test_of(SimpleNamespace(model=SimpleNamespace())) is None
