"""A gate.json that is damaged, not a gate, written by a newer tunesmith, or missing fields never breaks what shows
it: the report, the web UI's pages and the model card say what is wrong (or show what is there), and nothing
crashes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.config import save_config, validate_config
from tunesmith.document import Document, Section, render_html
from tunesmith.export.folders import gate_card_blocks
from tunesmith.report import build_report
from tunesmith.results.gate import gate_blocks, gate_state
from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings, create_ui_app

EVAL = {"task": "classification", "num_examples": 4, "base": {"accuracy": 0.5}, "tuned": {"accuracy": 0.75}}
BROKEN = {"not json": "{not json", "not a gate": json.dumps([1, 2]), "no checks": json.dumps({"passed": True}),
          "newer": json.dumps({"version": 99, "passed": True, "checks": []}),
          "a nameless check": json.dumps({"passed": True, "checks": [{"status": "passed"}]})}
WHY = {"not json": "gate.json", "not a gate": "is not a gate result", "no checks": "is not a gate result",
       "newer": "written by a newer tunesmith (version 99)", "a nameless check": "is not a gate result"}


def evaluated_run(root) -> RunDir:
    run = RunDir(root)
    run.root.mkdir(parents=True)
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}), run.config_path)
    run.eval_json.write_text(json.dumps(EVAL))
    return run


@pytest.mark.parametrize("kind", list(BROKEN))
def test_an_unreadable_gate_is_said_everywhere_it_shows(tmp_path, kind):
    run = evaluated_run(tmp_path / "runs" / "sms")
    run.gate_json.write_text(BROKEN[kind])
    state, gate, line = gate_state(run.root)
    assert (state, gate) == ("unreadable", None) and WHY[kind] in line
    build_report(run.config(), run)
    assert "The gate's result cannot be read:" in run.report_md.read_text()
    assert "cannot be read" in gate_card_blocks(run.root)[0].text
    with TestClient(create_ui_app(UiSettings(runs_dir=tmp_path / "runs")), base_url="http://127.0.0.1") as client:
        assert 'data-gate="unreadable"' in client.get("/").text
        page = client.get("/runs/sms")
        assert page.status_code == 200 and 'data-gate="unreadable"' in page.text


def test_checks_missing_their_numbers_or_of_an_unknown_kind_still_show(tmp_path, gate_example):
    gate = gate_example(passed=False)
    gate["checks"] = [
        {"name": "against_base", "status": "failed", "subsets": {"all": None, "unleaked": None}},
        {"name": "general_ability", "status": "passed", "kept": None, "lm_eval": {"tasks": "none"}},
        {"name": "valid_output", "status": "failed", "examples": ["not a mapping"]},
        {"name": "a_check_from_the_future", "title": "new", "status": "measured", "value": 3, "threshold": "x"},
    ]
    html = render_html(Document("t", sections=[Section("Gate", gate_blocks(gate, "sms", stale=False))]))
    assert "General ability was not measured: not available." in html
    assert "Gate failed: against_base (failed); valid_output (failed)" in html
    assert "<td>a_check_from_the_future (a_check_from_the_future)</td>" not in html
    assert "<td>new (a_check_from_the_future)</td><td>measured</td><td>3</td>" in html
    assert "Invalid answers" not in html  # none of the examples is an answer
