"""build_report on a realistic fake run: the verdict first, exact metric rows, self-contained escaped HTML,
graceful gaps, the token-length histogram and the rendered sample of the data check, the config last and folded."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.json_files import write_jsonl
from tunesmith.report import build_report
from tunesmith.run_dir import RunDir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"

EVAL = {
    "task": "classification",
    "labels": ["ham", "spam"],
    "num_examples": 1000,
    "base": {
        "accuracy": 0.85, "f1": 0.5, "loss": 2.5, "perplexity": 12.1825,
        "per_class": {"ham": {"precision": 0.87, "recall": 0.97, "f1": 0.92, "support": 866},
                      "spam": {"precision": 0.3, "recall": 0.1, "f1": 0.15, "support": 134}},
        "confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[840, 26], [124, 10]]},
    },
    "tuned": {
        "accuracy": 0.97, "f1": 0.93, "loss": 0.31, "perplexity": 1.3634,
        "per_class": {"ham": {"precision": 0.98, "recall": 0.99, "f1": 0.985, "support": 866},
                      "spam": {"precision": 0.94, "recall": 0.88, "f1": 0.909, "support": 134}},
        "confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[860, 6], [16, 118]]},
    },
    "delta": {"accuracy": 0.12, "f1": 0.43, "loss": -2.19, "perplexity": -10.8191},
}


def split_summary(rows: int, ham: int, truncated: int) -> dict:
    """One split as `DataReport.to_dict` writes it."""
    return {
        "rows": rows, "file": "sms.jsonl",
        "tokens": {"min": 9.0, "mean": 41.25, "median": 38.0, "p95": 97.0, "max": 180.0},
        "truncated_rows": truncated, "supervised_tokens_lost": 3 * truncated, "rows_without_supervision": 0,
        "label_counts": {"ham": ham, "spam": rows - ham},
        "label_fractions": {"ham": ham / rows, "spam": 1 - ham / rows},
    }


DATA_SUMMARY = {
    "format": "classification", "labels": ["ham", "spam"], "max_length": 128, "loss_on": "assistant",
    "splits": {
        "train": split_summary(1800, 1559, 12),
        "validation": split_summary(200, 173, 1),
        "test": {"rows": 0, "file": "sms.jsonl", "tokens": None, "truncated_rows": 0, "supervised_tokens_lost": 0,
                 "rows_without_supervision": 0, "label_counts": None, "label_fractions": None},
    },
    "findings": [{"kind": "duplicate", "split": "train", "count": 4, "message": "4 rows repeat an earlier row",
                  "locations": ["sms.jsonl:10", "sms.jsonl:99"]}],
    "has_problems": True,
}


def prediction(index: int, tuned_correct: bool, base_correct: bool, prompt: str = "Classify: hello") -> dict:
    return {
        "location": f"sms.jsonl:{index}", "prompt": prompt, "reference": "ham",
        "base_prediction": "ham" if base_correct else "spam", "tuned_prediction": "ham" if tuned_correct else "spam",
        "base_correct": base_correct, "tuned_correct": tuned_correct,
    }


def report(run: RunDir) -> tuple[Path, Path]:
    """Build the report; ``(report.md, report.html)``."""
    paths = build_report(run.config(), run)
    return Path(paths["markdown"]), Path(paths["html"])


def make_run(root: Path, num_examples: int = 3) -> RunDir:
    run = RunDir(root)
    root.mkdir()
    config = validate_config({
        "model": {"name": "default"}, "data": {"train": "sms.jsonl", "system_prompt": EVIL},
        "evaluate": {"num_examples": num_examples},
    })
    save_config(config, run.config_path)
    return run


@pytest.fixture()
def finished_run(tmp_path) -> RunDir:
    run = make_run(tmp_path / "sms-lora")
    train = [{"step": s, "epoch": s / 100, "loss": 2.0 / s, "lr": 2e-4, "grad_norm": 0.9, "tokens_per_s": 310.5,
              "supervised_tokens": 40, "elapsed_s": s * 0.5} for s in range(10, 130, 10)]
    validation = [{"step": 50, "val_loss": 0.4}, {"step": 100, "val_loss": 0.12}, {"step": 120, "val_loss": 0.13}]
    write_jsonl(run.metrics, train[:5] + validation[:1] + train[5:10] + validation[1:2] + train[10:] + validation[2:])
    run.train_summary.write_text(json.dumps({
        "steps": 120, "best_step": 100, "best_val_loss": 0.12, "stopped_early": False, "train_rows": 1800,
        "train_tokens": 90000, "elapsed_s": 300.0, "tokens_per_s": 300.0, "trainable_params": 4884480,
        "total_params": 139400000,
        "truncation": {
            "rows": 1800, "truncated_rows": 12, "supervised_tokens_lost": 340, "rows_without_supervision": 0,
        },
    }))
    run.data_summary.write_text(json.dumps(DATA_SUMMARY))
    run.eval_json.write_text(json.dumps(EVAL))
    write_jsonl(run.predictions, [
        prediction(1, tuned_correct=True, base_correct=True),
        prediction(2, tuned_correct=True, base_correct=False, prompt=EVIL + " WIN a prize " + "x" * 300),
        prediction(3, tuned_correct=False, base_correct=True),
        prediction(4, tuned_correct=True, base_correct=False),
        prediction(5, tuned_correct=True, base_correct=False),
    ])
    return run


def test_markdown_has_every_section_with_exact_values(finished_run):
    markdown_path, _ = report(finished_run)
    markdown = markdown_path.read_text()

    assert re.match(r"# tunesmith report: sms-lora \(\d{4}-\d{2}-\d{2}\)\n", markdown)
    # Base vs tuned: scalars only (per_class and confusion_matrix are shown separately), delta = tuned - base.
    assert (
        "| metric | base | tuned | delta |\n|---|---:|---:|---:|\n"
        "| accuracy | 0.8500 | 0.9700 | +0.1200 |\n"
        "| f1 | 0.5000 | 0.9300 | +0.4300 |\n"
        "| loss | 2.5000 | 0.3100 | -2.1900 |\n"
        "| perplexity | 12.1825 | 1.3634 | -10.8191 |\n"
    ) in markdown
    assert "| ham | 866 | 0.9200 | 0.9850 | 0.9800 | 0.9900 |" in markdown  # per-class: support, base F1, tuned...
    assert "| spam | 16 | 118 |" in markdown and "| spam | 124 | 10 |" in markdown  # tuned and base confusion
    # Data: facts, one row per split (the empty test split too), token lengths, label balance, findings.
    assert "- **format:** classification\n- **labels:** ham, spam\n- **max length:** 128\n" in markdown
    assert "- **truncation while training:** 12 of 1,800 rows truncated; 340 supervised tokens lost\n" in markdown
    assert (  # the file column is text, so left-aligned
        "| split | rows | file | truncated rows | supervised tokens lost | rows without supervision |\n"
        "|---|---:|---|---:|---:|---:|\n"
        "| train | 1,800 | sms.jsonl | 12 | 36 | 0 |\n| validation | 200 | sms.jsonl | 1 | 3 | 0 |\n"
        "| test | 0 | sms.jsonl | 0 | 0 | 0 |\n"
    ) in markdown
    assert "| train | 9 | 41.2 | 38 | 97 | 180 |" in markdown
    assert "| test | not available | not available | not available | not available | not available |" in markdown
    assert "| split | ham | spam |\n|---|---|---|\n| train | 1,559 (86.6%) | 241 (13.4%) |" in markdown
    assert "| duplicate | train | 4 | 4 rows repeat an earlier row |" in markdown
    assert "- **findings:**" not in markdown  # a table of their own, not a fact
    # Training summary.
    assert "- **best step:** 100" in markdown and "- **training time:** 5m 00s" in markdown
    assert "- **throughput (real tokens/s):** 300" in markdown
    assert "- **trainable parameters:** 4,884,480 of 139,400,000 (3.50%)" in markdown
    # The resolved config as a YAML block (a fenced block shows its text literally, so it needs no escaping).
    assert "```yaml\nmodel:\n  name: default\n" in markdown


def test_markdown_links_pngs_written_beside_it(finished_run):
    markdown_path, _ = report(finished_run)
    markdown = markdown_path.read_text()
    for name in ("loss_curve.png", "confusion_matrix.png"):
        assert f"]({name})" in markdown
        assert (finished_run.root / name).read_bytes().startswith(PNG_MAGIC)


def test_examples_mix_fixed_rows_and_tuned_mistakes_and_truncate_prompts(finished_run):
    markdown = report(finished_run)[0].read_text()
    captions = re.findall(r"\*\*Example \d \((sms.jsonl:\d)\): tuned (\w+), base (\w+)\*\*", markdown)
    # num_examples = 3: two rows the tuned model fixed (in file order), then its one mistake.
    assert captions == [("sms.jsonl:2", "right", "wrong"), ("sms.jsonl:4", "right", "wrong"),
                        ("sms.jsonl:3", "wrong", "right")]
    prompt_line = next(line for line in markdown.splitlines() if "WIN a prize" in line)
    shown = prompt_line.removeprefix("- **prompt:** ")
    assert shown.endswith("x\u2026")
    assert shown.startswith("&lt;script&gt;alert('x')&lt;/script&gt; WIN a prize xxx")


def test_html_is_self_contained_and_escapes_user_text(finished_run):
    _, html_path = report(finished_run)
    html = html_path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2  # loss curve and confusion heatmaps
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert 'src="http' not in html and "<link" not in html and "url(" not in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html  # in the config and in a prompt
    cells = '<td class="num">0.8500</td><td class="num">0.9700</td><td class="num">+0.1200</td>'
    assert f"<tr><td>accuracy</td>{cells}</tr>" in html


def test_user_text_is_escaped_in_markdown_too(finished_run):
    markdown = report(finished_run)[0].read_text()
    outside_code = re.sub(r"```yaml\n.*?\n```", "", markdown, flags=re.S)
    assert "<script" not in outside_code
    assert "&lt;script&gt;" in outside_code


def test_run_with_only_a_config_reports_what_is_missing(tmp_path):
    run = make_run(tmp_path / "fresh")
    markdown_path, html_path = report(run)
    markdown, html = markdown_path.read_text(), html_path.read_text()
    for section in ("Data", "Training", "Evaluation", "Example predictions"):
        body = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert "not available" in body, section
    assert "data:image/png" not in html and not (run.root / "loss_curve.png").exists()


def test_missing_base_model_shows_not_available_cells(finished_run):
    finished_run.eval_json.write_text(json.dumps({**EVAL, "base": None, "delta": None}))
    markdown = report(finished_run)[0].read_text()
    assert "| accuracy | not available | 0.9700 | not available |" in markdown
    assert "| spam | 134 | not available | 0.9090 | 0.9400 | 0.8800 |" in markdown
    assert "Confusion matrix, base model" not in markdown and "Confusion matrix, tuned model" in markdown


def test_pipes_in_labels_cannot_break_a_markdown_table(finished_run):
    confusion = {"labels": ["a|b", "c"], "matrix": [[1, 2], [3, 4]]}
    finished_run.eval_json.write_text(json.dumps({"task": "classification", "base": None,
                                              "tuned": {"accuracy": 0.5, "confusion_matrix": confusion}}))
    markdown = report(finished_run)[0].read_text()
    assert "| a\\|b | 1 | 2 |" in markdown


EDGES = [9.0, 40.0, 71.0, 102.0, 133.0, 164.0, 195.0]


def summary_with_lengths() -> dict:
    summary = copy.deepcopy(DATA_SUMMARY)
    summary["splits"]["train"]["length_histogram"] = {"edges": EDGES, "counts": [700, 600, 300, 150, 40, 10]}
    summary["splits"]["validation"]["length_histogram"] = {"edges": EDGES, "counts": [80, 60, 40, 15, 4, 1]}
    summary["sample"] = {"location": "sms.jsonl:1", "split": "train", "text": "<|im_start|>user\nhi<|im_end|>\n"
                         "<|im_start|>assistant\n[[ham<|im_end|>]]\n", "supervised_tokens": 2, "total_tokens": 9,
                         "round_trip": "ok"}
    return summary


def test_report_shows_the_histogram_and_the_sample_not_their_raw_numbers(tmp_path):
    run = make_run(tmp_path / "run")
    run.data_summary.write_text(json.dumps(summary_with_lengths()))
    markdown_path, html_path = report(run)
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
    markdown_path, _ = report(run)
    assert "token_lengths.png" not in markdown_path.read_text()
    assert not (run.root / "token_lengths.png").exists()


def test_the_verdict_comes_first_and_the_config_last_folded(finished_run):
    markdown_path, html_path = report(finished_run)
    markdown, html = markdown_path.read_text(), html_path.read_text()
    titles = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert titles == ["Summary", "Evaluation", "Example predictions", "Training", "Data", "Config"]
    summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    assert "accuracy: base 0.8500 → tuned 0.9700 (+0.1200) on 1,000 test rows." in summary
    assert "- **truncation:** 12 of 1,800 training rows were truncated (340 supervised tokens lost)" in summary
    config = html.split("<h2>Config</h2>")
    assert html.count("<details>") == 1 and config[0].endswith("<summary>")


def test_leaked_rows_are_shown_and_scored_apart(finished_run):
    leaked = {"checked": True, "leaked_rows": 2, "locations": ["sms.jsonl:4", "sms.jsonl:9"]}
    unleaked = {"num_examples": 998, "base": {"accuracy": 0.849}, "tuned": {"accuracy": 0.9699}}
    finished_run.eval_json.write_text(json.dumps({**EVAL, "leakage": leaked, "unleaked": unleaked}))
    markdown = report(finished_run)[0].read_text()
    assert "| metric | base | tuned | delta | base, unleaked | tuned, unleaked | delta, unleaked |" in markdown
    assert "| accuracy | 0.8500 | 0.9700 | +0.1200 | 0.8490 | 0.9699 | +0.1209 |" in markdown
    assert "- **leaked test rows:** 2: sms.jsonl:4, sms.jsonl:9" in markdown
    assert "- **leakage:** 2 of 1,000 test rows are also in train" in markdown
