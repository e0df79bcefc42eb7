"""Evaluating a preference run when its inputs fail it: no held-out pairs (a skipped block that says why, and one
line), non-finite log-probabilities (refused in one line naming the pair), an init_from run whose test rows are gone
(refused in one line naming that run). The preference method and `model.init_from` are set with model_copy: a
stand-in until the schema of issue 26's other parts is merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.data.example import Example, Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import RunError
from tunesmith.evaluate import preference
from tunesmith.evaluate.preference import evaluate_preference, task_inputs
from tunesmith.run_dir import RunDir

PAIRS = [Example(({"role": "user", "content": f"Say {word}."}, {"role": "assistant", "content": word}),
                 f"pairs.jsonl:{number}", rejected={"role": "assistant", "content": "no"})
         for number, word in enumerate(["hello", "thanks"], start=1)]


def as_dpo(config: RunConfig, init_from=None) -> RunConfig:
    model = config.model.model_copy(update={"init_from": init_from}) if init_from else config.model
    return config.model_copy(update={"method": "dpo", "model": model})


@pytest.fixture()
def sft_run(tmp_path, tiny_model_dir, spam_rows, write_jsonl) -> RunDir:
    """A finished run's folder as model.init_from names it: its config with train and test files."""
    data = DataConfig(train=write_jsonl(tmp_path / "train.jsonl", spam_rows(12)[:8]),
                      test=write_jsonl(tmp_path / "test.jsonl", spam_rows(12)[8:12]))
    run = RunDir(tmp_path / "sft")
    run.root.mkdir()
    save_config(RunConfig(model=ModelConfig(name=str(tiny_model_dir)), data=data, method="lora",
                          evaluate=EvaluateConfig(batch_size=2, max_new_tokens=4)), run.config_path)
    return run


def test_a_preference_run_without_test_pairs_skips_the_block_and_says_why(lora_run, capsys):
    run = RunDir(lora_run)
    block = evaluate_preference(as_dpo(run.config()), run, [])
    assert block == {"skipped": "the run's test split has no preference pairs (give data.test, or set "
                                "data.split.test above 0)"}
    err = capsys.readouterr().err
    assert "preference accuracy not measured: the run's test split has no preference pairs" in " ".join(err.split())
    assert not (run.root / preference.PAIRS_FILE).exists()


def test_nan_log_probabilities_are_refused_in_one_line_naming_the_pair(lora_run, monkeypatch):
    run = RunDir(lora_run)

    def nan_for_the_tuned_model(model, pairs, batch_size, pad_token_id, reference=False):
        chosen = [float("nan") if not reference and index == 1 else -3.0 for index in range(len(pairs))]
        return chosen, [-4.0] * len(pairs)

    monkeypatch.setattr(preference, "pair_logps", nan_for_the_tuned_model)
    with pytest.raises(RunError) as caught:
        evaluate_preference(as_dpo(run.config()), run, PAIRS)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the tuned model gives non-finite log-probabilities to 1 of 2 test pairs (first "
                              "pairs.jsonl:2)")
    assert "train.on_nonfinite" in message
    assert not (run.root / preference.PAIRS_FILE).exists()  # nothing half-measured is written


def test_an_init_from_run_whose_test_rows_are_gone_is_refused_naming_it(sft_run, lora_run):
    config = as_dpo(RunDir(lora_run).config(), init_from=sft_run.root)
    Path(sft_run.config().data.test).unlink()
    with pytest.raises(RunError) as caught:
        task_inputs(config, RunInputs(config, Splits(PAIRS, [], PAIRS, "preference")))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the task of sft (model.init_from) cannot be measured again: its test rows cannot be "
                              "read: ")
    assert "file not found" in message and str(sft_run.config_path) in message


def test_an_init_from_run_that_is_no_run_is_refused_naming_the_folder(tmp_path, lora_run):
    config = as_dpo(RunDir(lora_run).config(), init_from=tmp_path / "nothing")
    with pytest.raises(RunError, match="is not a tunesmith run folder"):
        task_inputs(config, RunInputs(config, Splits(PAIRS, [], PAIRS, "preference")))
