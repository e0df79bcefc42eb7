"""The report's Gate section: first in the report, every check with its status, numbers, intervals, rows and
reason, the general ability kept in a sentence, the lm-eval table, a stale gate said to be stale, model text shown as
text; nothing for a run never gated that asks for no gate."""

from __future__ import annotations

import json
import re

from tunesmith.config import save_config, validate_config
from tunesmith.report import build_report
from tunesmith.run_dir import RunDir

EVAL = {"task": "classification", "labels": ["ham", "spam"], "num_examples": 1000,
        "base": {"accuracy": 0.719}, "tuned": {"accuracy": 0.983}, "delta": {"accuracy": 0.264}}


def gated_run(tmp_path, gate: dict | None = None) -> RunDir:
    run = RunDir(tmp_path / "sms-gated")
    run.root.mkdir(parents=True)
    config = {"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}
    save_config(validate_config(config | ({"gate": gate} if gate is not None else {})), run.config_path)
    run.eval_json.write_text(json.dumps(EVAL))
    return run


def sections(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)


def gate_part(run: RunDir) -> str:
    """The Gate section of report.md, its escaped brackets read back as brackets."""
    return run.report_md.read_text().split("## Summary")[0].replace("\\[", "[").replace("\\]", "]")


def test_the_gate_comes_first_with_every_check_its_numbers_and_the_general_ability_kept(tmp_path, gate_example):
    run = gated_run(tmp_path)
    gate_example(run.root, failed=("against_baseline",))
    build_report(run.config(), run)
    markdown = run.report_md.read_text()
    assert sections(markdown)[:2] == ["Gate", "Summary"]
    gate = gate_part(run)
    assert "Gate failed: against_baseline" in gate and "stale" not in gate
    assert ("| not worse than the best classic baseline (against_baseline) | failed | accuracy +0.0130 | "
            "[+0.0040, +0.0220] | not worse than tfidf_logreg: interval above -0.0100 | 1,000 all |") in gate
    assert "| beats the base model (against_base) | passed | accuracy +0.2640 | [+0.2360, +0.2920] |" in gate
    assert "| confidence is calibrated (calibration) | passed | ECE 0.0032 | [0.0027, 0.0127] | ≤ 0.0500 | 1,000 |" \
        in gate
    assert "| answers fast enough (latency) | measured | p95 0.210 s (p50 0.150 s, cpu) | – | nothing (measured " \
           "only) | 20 |" in gate
    # Both subsets of each comparison, with McNemar's counts.
    assert ("| base | rows not leaked from train | 941 | 0.9820 | 0.7150 | +0.2670 | [+0.2330, +0.2970] | "
            "p = 1.0e-39 (255 rows only the tuned model got right, 4 only the other) |") in gate
    assert ("The tuned model keeps 97.0% [95.0%, 99.0%] of the base model's general ability: its loss on the "
            "reference answers of 200 general prompts (12,345 tokens) went from 2.1000 (base) to 2.1300") in gate
    assert "| arc_tiny | acc | 0.5000 | 0.4800 | 96.0% | 0.0200 | 100 |" in gate  # lm-eval
    # Reasons and model answers are text: markup is escaped, never passed through.
    assert "&lt;b&gt;below&lt;/b&gt;" in gate and "<b>" not in gate
    html = run.report_html.read_text()
    assert "<h2>Gate</h2>" in html and html.index("<h2>Gate</h2>") < html.index("<h2>Summary</h2>")
    assert "&lt;script&gt;window.__gate_xss=1&lt;/script&gt;maybe" in html and "<script>window" not in html


def test_a_gate_that_judged_an_earlier_evaluation_is_said_to_be_stale(tmp_path, gate_example):
    run = gated_run(tmp_path)
    gate_example(run.root)
    run.eval_json.write_text(json.dumps(EVAL | {"num_examples": 999}))  # evaluated again since
    build_report(run.config(), run)
    gate = gate_part(run)
    assert "This gate is stale: sms-gated was evaluated again after the gate judged it" in gate
    assert "Gate passed (5 checks passed, 2 measured only or skipped)" in gate


def test_a_run_never_gated_has_no_gate_section_unless_its_config_asks_for_one(tmp_path):
    run = gated_run(tmp_path)
    build_report(run.config(), run)
    assert "## Gate" not in run.report_md.read_text()
    asked = gated_run(tmp_path / "asked", gate={"margin": 0.02})
    build_report(asked.config(), asked)
    assert "<p>Not gated yet: run `tunesmith gate sms-gated`" in asked.report_html.read_text()


def test_a_skipped_general_ability_check_says_why(tmp_path, gate_example):
    run = gated_run(tmp_path)
    gate = gate_example()
    general = next(check for check in gate["checks"] if check["name"] == "general_ability")
    general.clear()
    general |= {"name": "general_ability", "title": "keeps the base's general ability", "status": "skipped",
                "reason": "gate.general_rows is 0", "value": None, "threshold": 0.9}
    gate_example(run.root, checks=gate["checks"])
    build_report(run.config(), run)
    assert "General ability was not measured: gate.general_rows is 0." in run.report_md.read_text()
