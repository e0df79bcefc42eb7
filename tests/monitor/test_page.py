"""The monitor's summary, JSON and HTML page (`render_monitor`): the same figures in each, and the page's plots."""

from __future__ import annotations

from tunesmith.cli import main
from tunesmith.document import Table, render_text
from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.page import monitor_document, render_monitor


def test_the_summary_lists_each_breach_with_its_setting(tmp_path, spam_run, live_requests, write_log):
    result = monitor_log(write_log(tmp_path / "logs", live_requests(spam_run, "shifted")), spam_run.root)
    breaches = monitor_document(result).sections[0]
    assert breaches.title == "Breaches" and isinstance(breaches.blocks[0], Table)
    rows = {row[0]: row[1:] for row in breaches.blocks[0].rows}
    assert rows["label_psi"][1:] == ["0.2000", "monitor.max_label_psi"]
    assert "e-" in rows["length_ks_pvalue"][0]  # a tiny p-value keeps its digits instead of printing 0.0000
    text = render_monitor(result)
    assert text == render_text(monitor_document(result))
    assert text.splitlines()[1] == "48 requests; 5 thresholds breached"
    assert "Unfamiliar inputs (no training input this similar)" in text and "48 of 48 (100.0%)" in text


def test_html_page_has_the_figures(tmp_path, spam_run, live_requests, request_record, write_log, capsys):
    records = live_requests(spam_run, "familiar")
    folder = write_log(tmp_path / "logs", records + [request_record(99, status=500)])
    page = tmp_path / "monitor.html"
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--html", str(page)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"page: {page}")
    html = page.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 4
    for alt in ("latency of answered requests", "prompt length in tokens, live vs training",
                "share of each label, live predictions vs training", "requests over time"):
        assert f'alt="{alt}"' in html


def test_an_empty_log_reports_no_traffic(tmp_path, spam_run, write_log, capsys):
    folder = write_log(tmp_path / "logs", [])
    page = tmp_path / "page.html"
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--html", str(page)]) == 0
    assert "0 requests; every threshold holds" in capsys.readouterr().out
    assert "no figures: the log holds no requests" in page.read_text(encoding="utf-8")

