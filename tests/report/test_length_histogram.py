"""The data check's token-length histogram and rendered sample in the run report."""

from __future__ import annotations

import copy
import json

from tunesmith.report import build_report
from tunesmith.report.plots import token_length_histogram_png

from test_build_report import DATA_SUMMARY, PNG_MAGIC, make_run  # noqa: E402  (tests/report is on sys.path)

EDGES = [9.0, 40.0, 71.0, 102.0, 133.0, 164.0, 195.0]


def summary_with_lengths() -> dict:
    summary = copy.deepcopy(DATA_SUMMARY)
    summary["splits"]["train"]["length_histogram"] = {"edges": EDGES, "counts": [700, 600, 300, 150, 40, 10]}
    summary["splits"]["validation"]["length_histogram"] = {"edges": EDGES, "counts": [80, 60, 40, 15, 4, 1]}
    summary["sample"] = {"source": "sms.jsonl:1", "split": "train", "text": "<|im_start|>user\nhi<|im_end|>\n"
                         "<|im_start|>assistant\n[[ham<|im_end|>]]\n", "supervised_tokens": 2, "total_tokens": 9,
                         "round_trip": "ok"}
    return summary


def test_histogram_png_is_drawn_per_split():
    png = token_length_histogram_png({"train": {"edges": EDGES, "counts": [1, 2, 3, 2, 1, 0]},
                                      "test": {"edges": EDGES, "counts": [0, 0, 0, 0, 0, 0]}}, max_length=128)
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert png == token_length_histogram_png({"train": {"edges": EDGES, "counts": [1, 2, 3, 2, 1, 0]},
                                              "test": {"edges": EDGES, "counts": [0, 0, 0, 0, 0, 0]}}, max_length=128)


def test_report_shows_the_histogram_and_the_sample_not_their_raw_numbers(tmp_path):
    run = make_run(tmp_path / "run")
    run.data_summary.write_text(json.dumps(summary_with_lengths()))
    markdown_path, html_path = build_report(run.root)
    markdown = markdown_path.read_text()
    assert "![token length histogram per split](token_lengths.png)" in markdown
    assert (run.root / "token_lengths.png").read_bytes().startswith(PNG_MAGIC)
    assert "length histogram" not in markdown.replace("token length histogram per split", "")  # no raw table
    assert "700" not in markdown
    assert "[[ham<|im_end|>]]" in markdown and "**supervised tokens:** 2" in markdown
    assert html_path.read_text().count("data:image/png;base64,") == 1  # the histogram, inlined


def test_report_without_histograms_has_no_figure(tmp_path):
    run = make_run(tmp_path / "run")
    run.data_summary.write_text(json.dumps(DATA_SUMMARY))
    markdown_path, _ = build_report(run.root)
    assert "token_lengths.png" not in markdown_path.read_text()
    assert not (run.root / "token_lengths.png").exists()
