"""`gate.lm_eval_tasks` (`tunesmith.gate.lm_eval`): lm-evaluation-harness on a custom task on local files, offline,
on the tiny model; the errors a user can cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import apply_overrides, validate_config
from tunesmith.errors import ConfigError
from tunesmith.extras import MissingExtraError
from tunesmith.gate.lm_eval import lm_eval_scores

TASK_YAML = """task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture()
def local_task(tmp_path, monkeypatch) -> Path:
    """A folder with one multiple-choice task reading a local JSONL file (no network, no Hub dataset)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    folder = tmp_path / "tasks"
    folder.mkdir()
    rows = [{"question": f"Is {n} even?", "choices": ["yes", "no"], "answer": n % 2} for n in range(6)]
    data = folder / "tiny_choice.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (folder / "tiny_choice.yaml").write_text(TASK_YAML.format(data=data), encoding="utf-8")
    return folder


def with_gate(run, **gate):
    overrides = [f"gate.{key}={json.dumps(value) if not isinstance(value, str) else value}"
                 for key, value in gate.items()]
    return validate_config(apply_overrides(run.config().model_dump(mode="json"), overrides))


def test_a_local_task_is_scored_on_the_merged_model_and_the_base(one_answer_run, local_task):
    config = with_gate(one_answer_run, lm_eval_tasks=["tiny_choice"], lm_eval_include_path=str(local_task),
                       lm_eval_limit=4)
    result = lm_eval_scores(config, one_answer_run)
    assert result["threshold"] == 0.9 and result["limit"] == 4
    scores = result["tasks"]["tiny_choice"]
    assert scores["metric"] == "acc" and scores["higher_is_better"] is True and scores["rows"] == 4
    assert 0.0 <= scores["base"] <= 1.0 and 0.0 <= scores["tuned"] <= 1.0
    assert scores["kept"] == (pytest.approx(scores["tuned"] / scores["base"]) if scores["base"] else None)
    assert set(scores["stderr"]) == {"base", "tuned"}


def test_an_unknown_task_names_the_key(one_answer_run, local_task):
    config = with_gate(one_answer_run, lm_eval_tasks=["no_such_task"], lm_eval_include_path=str(local_task))
    with pytest.raises(ConfigError, match="gate.lm_eval_tasks.*no_such_task"):
        lm_eval_scores(config, one_answer_run)


def test_a_missing_include_folder_names_the_key(one_answer_run, tmp_path):
    config = with_gate(one_answer_run, lm_eval_tasks=["tiny_choice"], lm_eval_include_path=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="gate.lm_eval_include_path"):
        lm_eval_scores(config, one_answer_run)


def test_without_lm_eval_the_error_names_the_extra(one_answer_run, local_task, monkeypatch):
    monkeypatch.setattr("tunesmith.extras.importlib.util.find_spec", lambda name: None)
    config = with_gate(one_answer_run, lm_eval_tasks=["tiny_choice"], lm_eval_include_path=str(local_task))
    with pytest.raises(MissingExtraError, match=r"pip install 'tunesmith\[lm-eval\]'"):
        lm_eval_scores(config, one_answer_run)


def test_task_data_missing_offline_is_one_line(one_answer_run, local_task):
    (local_task / "tiny_choice.jsonl").unlink()
    config = with_gate(one_answer_run, lm_eval_tasks=["tiny_choice"], lm_eval_include_path=str(local_task))
    with pytest.raises(ConfigError, match="gate.lm_eval_tasks: cannot load a task's data") as caught:
        lm_eval_scores(config, one_answer_run)
    assert "\n" not in str(caught.value)
