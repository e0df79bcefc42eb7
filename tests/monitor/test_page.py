"""The monitor's summary, JSON and HTML page (`render_monitor`): the same figures in each, each drift figure drawn
over the windows, and text from the log shown as text."""

from __future__ import annotations

from html import escape

from tunesmith.cli import main
from tunesmith.document import Table, render_text
from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.page import monitor_document, render_monitor

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_the_summary_lists_each_breach_with_its_window_p_value_and_setting(tmp_path, spam_run, live_stream,
                                                                           write_log):
    records = live_stream(0, 50) + live_stream(1, 50, "one_label", first=50)
    result = monitor_log(write_log(tmp_path / "logs", records), spam_run.root, window="50")
    breaches = monitor_document(result).sections[0]
    assert breaches.title == "Breaches" and isinstance(breaches.blocks[0], Table)
    [row] = breaches.blocks[0].rows
    assert row[0] == "labels" and row[1] == "#2 (2026-11-30 08:00:50 UTC)"
    assert row[3] == "0.0001" and row[4] == "0.0025" and row[5] == "monitor.false_alarm_rate"
    text = render_monitor(result)
    assert text == render_text(monitor_document(result))
    assert text.splitlines()[1] == ("100 requests in 2 windows (every 50 answered requests); 1 breach in 1 window")
    assert "Window #2 (2026-11-30 08:00:50 UTC)" in text and "Window #1" not in text  # details of breached ones
    assert "Most novel requests" in text


def test_a_single_window_shows_each_check(tmp_path, spam_run, live_stream, write_log):
    text = render_monitor(monitor_log(write_log(tmp_path / "logs", live_stream(0, 60, "unsure")), spam_run.root))
    assert "Confidence: share below the reference's tail" in text and "95% interval" in text
    assert "Prompt length (tokens), live vs reference" in text and "Predicted labels vs the reference's" in text
    assert "Each of the 4 checks measured is judged at p <= 0.0025." in text


def test_html_page_draws_each_drift_figure_over_the_windows(tmp_path, spam_run, live_stream, request_record,
                                                            write_log, capsys):
    records = live_stream(0, 50) + live_stream(1, 50, "novel", first=50) + [request_record(200, status=500)]
    folder = write_log(tmp_path / "logs", records)
    page = tmp_path / "monitor.html"
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--window", "50", "--html", str(page)]) == 1
    assert capsys.readouterr().out.rstrip().endswith(f"page: {page}")
    html = page.read_text(encoding="utf-8")
    titles = [  # what each figure shows, its window and its unit
        "Novelty: share of requests above the reference's tail (per window, every 50 answered requests; share, "
        "0 to 1)",
        "Prompt length: KS statistic against the reference (per window, every 50 answered requests; KS statistic, "
        "0 to 1)",
        "Predicted labels: chi-square against the reference's mix (per window, every 50 answered requests; "
        "chi-square statistic)",
        "Confidence: share of answers below the reference's tail (per window, every 50 answered requests; share, "
        "0 to 1)",
        "Error rate and p95 latency (per window, every 50 answered requests; share 0 to 1, seconds)",
        "Latency of answered requests (whole log, 100; seconds)",
        "Prompt length, live (whole log) vs reference (tokens; share of prompts)",
        "Requests over time (whole log; requests per 6.7s, failed in red)"]
    for title in titles:
        assert f'<figure><figcaption>{escape(title)}</figcaption><img alt="{escape(title)}"' in html
    assert html.count('src="data:image/png;base64,') == len(titles) and html.count('<div class="figures">') == 1


def test_hostile_text_from_the_log_is_escaped_on_the_page(tmp_path, spam_run, live_stream, write_log):
    records = live_stream(0, 40) + [{**live_stream(1, 1, first=40)[0], "id": HOSTILE, "text": HOSTILE,
                                     "novelty": 0.999, "model": HOSTILE, "route": HOSTILE}]
    folder = write_log(tmp_path / "logs", records)
    page = tmp_path / "page.html"
    render_monitor(monitor_log(folder, spam_run.root), html=page)
    html = page.read_text(encoding="utf-8")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_an_empty_log_reports_no_traffic(tmp_path, spam_run, write_log, capsys):
    folder = write_log(tmp_path / "logs", [])
    page = tmp_path / "page.html"
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--html", str(page)]) == 0
    assert "0 requests in 1 window (the whole log); every threshold holds" in capsys.readouterr().out
    assert "no figures: the log holds no requests" in page.read_text(encoding="utf-8")


def test_every_drift_check_has_its_figure_title_and_labels():
    from tunesmith.monitor.checks import DRIFT_CHECKS, FIGURES
    from tunesmith.monitor.page import CHECK_TITLES
    from tunesmith.monitor.page_figures import AXIS_LABELS, DRIFT_FIGURE_TITLES

    for table in (FIGURES, CHECK_TITLES, AXIS_LABELS, DRIFT_FIGURE_TITLES):
        assert list(table) == list(DRIFT_CHECKS)
