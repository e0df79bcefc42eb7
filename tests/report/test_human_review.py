"""The report's "Human review" section: absent until the run's review has a judgment, then between the evaluation
and the example predictions, with the review's statistics and user text escaped."""

from __future__ import annotations

from datetime import datetime

from tunesmith.config import save_config, validate_config
from tunesmith.document import render_html, render_markdown
from tunesmith.report.build import collect_report
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path
from tunesmith.run_dir import RunDir

EVIL = "<script>alert('x')</script>"


def reviewed_run(root) -> RunDir:
    """A run folder with a config and a review of two prompts (one of them hostile HTML), tuned vs base."""
    run = RunDir(root)
    root.mkdir()
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}), run.config_path)
    prompts = [ReviewPrompt(f"test.jsonl:{n}", None, text, "ok", None, {"sms": f"tuned {n}", "base": f"base {n}"})
               for n, text in enumerate([EVIL, "hello"])]
    database_path(root).parent.mkdir()
    create_database(database_path(root), ReviewPlan(
        models=[("sms", "tuned", str(root)), ("base", "base", "default")], prompts=prompts,
        items=[(0, "sms", "base"), (1, "sms", "base")],
        queues={"ann": [(0, "sms", "base"), (1, "base", "sms")], "bob": [(0, "base", "sms"), (1, "sms", "base")]},
        rubric=["correct"], show_reference=False))
    return run


def titles(run: RunDir) -> list[str]:
    return [section.title for section in collect_report(run.config(), run, datetime(2026, 11, 30)).sections]


def test_section_appears_once_judged(tmp_path):
    run = reviewed_run(tmp_path / "sms")
    assert "Human review" not in titles(run)  # a review without judgments says nothing yet
    with ReviewStore.open(run.root) as store:
        store.judge("ann", 1, "a", "fine")  # ann saw sms as A: sms wins
        store.judge("bob", 1, "a")  # bob saw base as A: base wins
        store.judge("ann", 2, "b")  # ann saw sms as B: sms wins
    found = titles(run)
    assert found.index("Human review") == found.index("Evaluation") + 1
    report = collect_report(run.config(), run, datetime(2026, 11, 30))
    markdown, html = render_markdown(report), render_html(report)
    assert "sms against each model" in markdown and "Cohen's kappa" in markdown
    # 1 win, no loss, 1 tie (the split item): W–L–T 1–0–1, and the rate is over the 1 decisive item.
    assert r"| base | 2 | 1–0–1 | 0 | 100% \[21%, 100%\] | 1 |" in markdown
    assert "sms against base: 1–0–1 (wins–losses–ties); it wins 100% of the 1 decisive item" in markdown
    assert "on 1 shared item: too few to judge agreement" in markdown
    assert "ann: sms better; bob: base better" in markdown  # the disagreement, un-blinded
    assert EVIL not in html and "&lt;script&gt;" in html


def test_no_review_no_section(tmp_path):
    run = RunDir(tmp_path / "plain")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}), run.config_path)
    assert "Human review" not in titles(run)
