"""examples/alpaca_dpo: its files are what make_data.py selects from the shared Alpaca copy, the pairs read as
preference rows with no identical or empty side, no prompt is in two files, and the training pairs are
length-balanced."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import check_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alpaca_dpo"


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLE / name).read_text(encoding="utf-8").splitlines()]


def test_the_files_are_what_make_data_selects(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alpaca = module.SHARED / "alpaca_2k.jsonl"
    if not alpaca.is_file():
        pytest.skip(f"{alpaca}: the shared Alpaca copy is not beside the repository")
    shipped = {row["prompt"]: row["rejected"] for row in rows("pairs_train_all.jsonl") + rows("pairs_test.jsonl")}
    references = {module.prompt_of(row): row["output"] for row in module.short_rows(alpaca)}
    # The base model's answers are the one part not re-made here (minutes of generation): the shipped ones stand in,
    # and a prompt left out of the files had the reference answer itself for an answer.
    monkeypatch.setattr(module, "base_answers",
                        lambda prompts: [shipped.get(prompt, references[prompt]) for prompt in prompts])
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr("sys.argv", ["make_data.py", "--alpaca", str(alpaca)])
    module.main()
    for name in ("sft.jsonl", "pairs_train_all.jsonl", "pairs_train.jsonl", "pairs_test.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes()


def test_the_training_pairs_are_length_balanced():
    pairs = rows("pairs_train.jsonl")
    chosen_longer = sum(len(pair["chosen"]) >= len(pair["rejected"]) for pair in pairs)
    assert chosen_longer == len(pairs) // 2
    everything = rows("pairs_train_all.jsonl")
    assert sum(len(pair["chosen"]) >= len(pair["rejected"]) for pair in everything) == chosen_longer


def test_the_pairs_read_clean_and_no_prompt_is_in_two_files(tiny_tokenizer):
    for name in ("pairs_train_all.jsonl", "pairs_train.jsonl", "pairs_test.jsonl"):
        data = DataConfig(path=str(EXAMPLE / name), format="preference", max_length=4096)
        report = check_file(EXAMPLE / name, tiny_tokenizer, 4096, data)
        assert report.unreadable_count == 0
        assert not [f for f in report.findings if f.kind in ("identical_pair", "empty_side", "duplicate")]
    sft = {(row["instruction"], row["input"]) for row in rows("sft.jsonl")}
    candidates = {row["prompt"] for row in rows("pairs_train_all.jsonl")}
    train = {row["prompt"] for row in rows("pairs_train.jsonl")}
    test = {row["prompt"] for row in rows("pairs_test.jsonl")}
    assert len(sft) == 440 and len(candidates) == 158 and len(test) == 39 and not candidates & test
    assert len(train) == 78 and train < candidates
    assert not {f"{instruction}\n\n{given}" if given else instruction for instruction, given in sft} & (train | test)
