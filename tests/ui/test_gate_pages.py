"""The release gate in the UI: the runs table's gate column (passed, failed with the failing checks, stale, not
gated, unreadable), the gate block at the top of a run's page, its JSON in /api/runs, and model text shown as
text; through Starlette's test client and in a real headless Chromium."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings, create_ui_app

LOOPBACK = "http://127.0.0.1"
EVAL = {"task": "classification", "labels": ["ham", "spam"], "num_examples": 1000, "base": {"accuracy": 0.719},
        "tuned": {"accuracy": 0.983}, "delta": {"accuracy": 0.264}, "baselines": {}, "unleaked": None}
EXPECTED_CELLS = {"sms-damaged": "unreadable", "sms-failed": "failed: against_baseline, general_ability",
                  "sms-passed": "passed", "sms-stale": "stale", "sms-ungated": "not gated"}


@pytest.fixture(scope="module")
def gate_runs(tmp_path_factory, gate_example) -> dict[str, RunDir]:
    """Five evaluated runs: gated and passed, gated and failed, gated before being evaluated again (stale), never
    gated, and one whose gate.json is damaged."""
    root = tmp_path_factory.mktemp("gate-runs")
    runs = {}
    for name in EXPECTED_CELLS:
        run = RunDir(root / name)
        run.root.mkdir()
        save_config(validate_config({"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}), run.config_path)
        run.eval_json.write_text(json.dumps(EVAL))
        runs[name] = run
    gate_example(runs["sms-passed"].root)
    gate_example(runs["sms-failed"].root, failed=("against_baseline", "general_ability"))
    gate_example(runs["sms-stale"].root)
    runs["sms-stale"].eval_json.write_text(json.dumps(EVAL | {"num_examples": 999}))
    runs["sms-damaged"].gate_json.write_text("{not json")
    return runs


@pytest.fixture(scope="module")
def client(gate_runs):
    runs_dir = next(iter(gate_runs.values())).root.parent
    with TestClient(create_ui_app(UiSettings(runs_dir=runs_dir)), base_url=LOOPBACK) as client:
        yield client


def test_the_runs_table_has_a_gate_column_and_the_api_says_it_too(client):
    page = client.get("/")
    assert page.status_code == 200 and "<th>gate</th>" in page.text
    for name, cell in EXPECTED_CELLS.items():
        assert f'data-run="{name}" data-status="done" data-gate="{cell.split(":")[0]}"' in page.text
        assert f">{cell}</span>" in page.text
    rows = {row["name"]: row for row in client.get("/api/runs").json()}
    assert rows["sms-failed"]["gate"] == "failed"
    assert rows["sms-failed"]["gate_failed"] == ["against_baseline", "general_ability"]
    assert rows["sms-stale"]["gate_line"].startswith("stale: gate passed")
    assert rows["sms-damaged"]["gate"] == "unreadable" and "gate.json" in rows["sms-damaged"]["gate_line"]


def test_the_run_page_opens_with_its_gate(client, gate_runs):
    page = client.get("/runs/sms-failed").text
    assert page.index('id="gate"') < page.index("<h2>Training</h2>") < page.index("<h2>Evaluation</h2>")
    assert "Gate failed: against_baseline (against_baseline failed: &lt;b&gt;below&lt;/b&gt; its threshold)" in page
    assert "The tuned model keeps 97.0% [95.0%, 99.0%] of the base model&#39;s general ability" in page
    assert "<td>not worse than the best classic baseline (against_baseline)</td><td>failed</td>" in page
    # An invalid answer is model text: shown, never run.
    assert "&lt;script&gt;window.__gate_xss=1&lt;/script&gt;maybe" in page and "<script>window" not in page
    assert "This gate is stale: sms-stale was evaluated again" in client.get("/runs/sms-stale").text
    ungated = gate_runs["sms-ungated"].root.resolve()  # the run's real path (outside the current folder here)
    assert f"Not gated: <code>tunesmith gate {ungated}</code>" in client.get("/runs/sms-ungated").text
    damaged = client.get("/runs/sms-damaged")
    assert damaged.status_code == 200 and 'class="error">' in damaged.text and "gate.json" in damaged.text


def test_the_gate_in_a_browser(gate_runs, serve_ui, browser, tmp_path_factory):
    ui = serve_ui(UiSettings(runs_dir=next(iter(gate_runs.values())).root.parent))
    browser.get(ui)
    cells = {row.get_attribute("data-run"): row.find_element("css selector", "td.gate-cell").text
             for row in browser.find_elements("css selector", "#runs tbody tr")}
    assert cells == EXPECTED_CELLS
    screenshots = tmp_path_factory.getbasetemp() / "screenshots"
    screenshots.mkdir(exist_ok=True)
    browser.save_screenshot(str(screenshots / "ui-runs-gate.png"))
    browser.get(f"{ui}/runs/sms-failed")
    gate = browser.find_element("css selector", "#gate")
    training = browser.find_element("css selector", ".charts")
    assert gate.is_displayed() and gate.location["y"] < training.location["y"]
    assert browser.execute_script("return window.__gate_xss") is None
    assert "<script>window.__gate_xss=1</script>maybe" in gate.text  # the answer as the model wrote it
    assert "failed" in gate.find_element("css selector", "h2 .gate").text
    browser.save_screenshot(str(screenshots / "ui-run-gate.png"))
