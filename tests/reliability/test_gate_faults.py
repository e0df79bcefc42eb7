"""What goes wrong around the gate: nothing evaluated, data changed since the evaluation, a metric of another
task, a failing measurement, a folder that is not a run; each a one-line error, and gate.json never half written."""

from __future__ import annotations

import json

import pytest

from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError, RunError
from tunesmith.gate import run_gate
from tunesmith.json_files import write_json
from tunesmith.run_dir import RunDir

TRUTHS = ["ham"] * 8 + ["spam"] * 4


def _gate(run, **kwargs):
    config = run.config()
    return run_gate(config, run, RunInputs(config), **kwargs)


def test_a_run_without_an_evaluation_is_told_to_evaluate_it(make_gated_run, error_of):
    run = make_gated_run("run", TRUTHS, TRUTHS)
    run.eval_json.unlink()
    assert "run `tunesmith eval" in error_of(lambda: _gate(run))


def test_test_rows_changed_since_the_evaluation_are_refused(make_gated_run):
    run = make_gated_run("run", TRUTHS, TRUTHS)
    test_file = run.config().data.test
    with open(test_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "one more row", "label": "ham"}) + "\n")
    with pytest.raises(RunError, match="changed since the evaluation"):
        _gate(run)


def test_a_metric_of_another_task_names_the_key(make_gated_run):
    run = make_gated_run("run", TRUTHS, TRUTHS, gate={"metric": "bleu"})
    with pytest.raises(ConfigError, match="gate.metric"):
        _gate(run)


def test_a_baseline_trained_again_to_other_scores_is_refused(make_gated_run):
    run = make_gated_run("run", TRUTHS, TRUTHS, baselines={"majority": TRUTHS}, per_row_baselines=False)
    # eval.json says the majority baseline answered every row right: trained again, it answers one label.
    with pytest.raises(RunError, match="the data changed since"):
        _gate(run)


def test_a_failing_measurement_leaves_the_previous_gate_json_whole(make_gated_run, monkeypatch):
    import tunesmith.gate.general as general

    run = make_gated_run("run", TRUTHS, TRUTHS, gate={"against_base": "off"})
    before = _gate(run)
    settings = run.config().gate.model_copy(update={"general_rows": 10})
    config = run.config().model_copy(update={"gate": settings})

    def broken(config, run):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(general, "general_ability", broken)
    with pytest.raises(RuntimeError, match="out of memory"):  # never a silent pass
        run_gate(config, run, RunInputs(config))
    assert json.loads(run.gate_json.read_text()) == before


def test_against_a_folder_that_is_not_a_run(make_gated_run, tmp_path, error_of):
    run = make_gated_run("run", TRUTHS, TRUTHS)
    (tmp_path / "nothing").mkdir()
    assert "nothing" in error_of(lambda: _gate(run, against=RunDir(tmp_path / "nothing")))


def test_a_gate_judging_an_earlier_evaluation_is_stale(make_gated_run):
    from tunesmith.results.gate import is_stale

    run = make_gated_run("run", TRUTHS, TRUTHS)
    gate = _gate(run)
    evaluation = json.loads(run.eval_json.read_text())
    write_json(run.eval_json, {**evaluation, "seconds_note": "evaluated again"})
    assert is_stale(gate, run.eval_json)
