"""`tunesmith gate` (exit 0/1, the table of checks, --set, --against), the gate at the end of `tunesmith run`, and
the --force that export and serve need for a run whose gate failed."""

from __future__ import annotations

import json

import pytest

TRUTHS = ["ham"] * 16 + ["spam"] * 4
GOOD = TRUTHS[:19] + ["ham"]
DEGENERATE = ["ham"] * 20


@pytest.fixture()
def degenerate_run(make_gated_run):
    return make_gated_run("degenerate", TRUTHS, DEGENERATE, base=["spam"] * 20,
                          baselines={"majority": DEGENERATE, "tfidf_logreg": TRUTHS})


def test_gate_exits_0_on_a_passing_run_and_prints_its_checks(cli, make_gated_run):
    run = make_gated_run("good", TRUTHS, GOOD, base=["spam"] * 20)
    code, out, error = cli("gate", str(run.root))
    assert (code, error) == (0, "")
    assert "against_base" in out and "gate PASSED" in out and str(run.gate_json) in out


def test_gate_exits_1_naming_the_failed_check(cli, degenerate_run):
    code, out, _ = cli("gate", str(degenerate_run.root))
    assert code == 1 and "gate FAILED" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("failed")] == ["against_baseline"]


def test_gate_settings_are_set_on_the_run_folder(cli, degenerate_run):
    code, _, _ = cli("gate", str(degenerate_run.root), "--set", "gate.against_baseline=off")
    assert code == 0 and degenerate_run.config().gate.against_baseline == "off"  # the folder records it
    code, _, error = cli("gate", str(degenerate_run.root), "--set", "gate.margn=0.1")
    assert code == 2 and "unknown key" in error


def test_gate_against_the_run_in_service(cli, make_gated_run, degenerate_run):
    from tunesmith.json_files import read_jsonl, write_jsonl

    run = make_gated_run("good", TRUTHS, GOOD, base=["spam"] * 20)
    # The same test rows (location, prompt, reference): the old run's answers are reused, its model never loaded.
    write_jsonl(degenerate_run.predictions, [{**old, "location": new["location"]} for old, new in zip(
        read_jsonl(degenerate_run.predictions), read_jsonl(run.predictions))])
    code, out, _ = cli("gate", str(run.root), "--against", str(degenerate_run.root))
    gate = json.loads(run.gate_json.read_text())
    assert gate["against"]["run"] == "degenerate" and "against_previous" in out and code == 0
    assert gate["checks"][2]["value"] == pytest.approx(0.15)


def test_export_and_serve_refuse_a_failed_gate_unless_forced(cli, degenerate_run, monkeypatch):
    import tunesmith.export as export
    import tunesmith.serve as serve

    cli("gate", str(degenerate_run.root))
    for command in (["export"], ["serve"]):
        code, _, error = cli(*command, str(degenerate_run.root))
        assert code == 2 and "failed its release gate: against_baseline" in error and "--force" in error
    monkeypatch.setattr(export, "export_run", lambda config, run: {"adapter": run.adapter})
    monkeypatch.setattr(serve, "serve", lambda targets, settings, **kwargs: 0)
    assert cli("export", str(degenerate_run.root), "--force")[0] == 0
    assert cli("serve", str(degenerate_run.root), "--force")[0] == 0


def test_run_exits_1_when_its_gate_failed(cli, degenerate_run, tmp_path, monkeypatch):
    import shutil

    import tunesmith.pipeline as pipeline

    def pipeline_with_a_failed_gate(config, run, resume=False):
        shutil.copy(degenerate_run.eval_json, run.eval_json)
        from tunesmith.data import RunInputs
        from tunesmith.gate import run_gate

        # Judged by the real gate, copied into the new run.
        run_gate(degenerate_run.config(), degenerate_run, RunInputs(degenerate_run.config()))
        shutil.copy(degenerate_run.gate_json, run.gate_json)
        return run

    monkeypatch.setattr(pipeline, "run_pipeline", pipeline_with_a_failed_gate)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"data": {"train": "train.jsonl"}, "gate": {},
                                  "output": {"dir": str(tmp_path / "runs"), "name": "gated"}}))
    code, out, _ = cli("run", str(config))
    assert code == 1 and "gate failed: against_baseline" in out
