"""The run report: a Markdown file and a self-contained HTML file saying what a run did and how well it did.

The content is gathered once into a small document model (text, facts, tables, code, images) and rendered
twice, so the two files always say the same thing. Every string taken from the run (config values, labels,
prompts, predictions) stays plain text in the model and is escaped by the renderer; a pipe or a ``<script>`` in
the data can neither break a table nor run in a browser. Missing inputs (no evaluation yet, no base model) show
as "not available" instead of failing: a report mid-way through a run is still useful.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Union

import yaml

from tunesmith.errors import RunError
from tunesmith.report.plots import confusion_matrices_png, loss_curve_png, token_length_histogram_png
from tunesmith.run_dir import RunDir

NOT_AVAILABLE = "not available"
PROMPT_CHARS = 200
ANSWER_CHARS = 300
METRIC_HEADER = ["metric", "base", "tuned", "delta"]
LOSS_CURVE_FILE = "loss_curve.png"
CONFUSION_FILE = "confusion_matrix.png"
LENGTH_HISTOGRAM_FILE = "token_lengths.png"
SPLIT_DETAIL_CAPTIONS = {"tokens": "Tokens per row (before truncation)"}


# ---------------------------------------------------------------------------------------------------------------
# Document model: plain text only; renderers do all escaping.


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Facts:
    """``label: value`` pairs, optionally under a caption."""

    items: list[tuple[str, str]]
    caption: str | None = None


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG: a linked file next to the Markdown, a base64 data URI inside the HTML."""

    file_name: str
    png: bytes
    alt: str


Block = Union[Text, Facts, Table, Code, Image]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, Image)]


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (with its PNGs beside it) and a self-contained ``report.html`` into the run folder."""
    run = RunDir(run_dir)
    report = collect_report(run, generated_at=datetime.now())
    for image in report.images():
        (run.root / image.file_name).write_bytes(image.png)
    run.report_md.write_text(render_markdown(report), encoding="utf-8")
    run.report_html.write_text(render_html(report), encoding="utf-8")
    return run.report_md, run.report_html


def collect_report(run: RunDir, generated_at: datetime) -> Report:
    """Read every file the run has so far and turn it into report sections."""
    config = run.config()
    train_summary = read_json(run.train_summary)
    name = run.root.resolve().name
    return Report(
        title=f"tunesmith report: {name} ({generated_at:%Y-%m-%d})",
        subtitle=f"{config.method} fine-tune of {config.model.name}; generated {generated_at:%Y-%m-%d %H:%M}",
        sections=[
            config_section(config),
            data_section(read_json(run.data_summary), train_summary),
            training_section(train_summary, read_jsonl(run.metrics)),
            evaluation_section(read_json(run.eval_json)),
            examples_section(read_jsonl(run.predictions), config.evaluate.num_examples),
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Sections


def config_section(config) -> Section:
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return Section("Config", [Code(text, "yaml")])


def data_section(data_summary: dict | None, train_summary: dict | None) -> Section:
    """The data check's summary (``DataReport.to_dict``): scalar entries as facts, the splits as tables (one row
    per split), any other mapping as its own table, and the check's findings. Truncation of the rows actually
    trained on comes from the training summary."""
    truncation = (train_summary or {}).get("truncation")
    if data_summary is None and not truncation:
        return Section("Data", [Text(f"{NOT_AVAILABLE} (no data_summary.json yet: training writes it)")])
    summary = data_summary or {}
    facts = [(_humanize(key), plain(value)) for key, value in summary.items() if key != "findings" and _is_flat(value)]
    if isinstance(truncation, dict):
        facts.append(("truncation while training", truncation_text(truncation)))
    blocks: list[Block] = [Facts(facts)] if facts else []
    splits = summary.get("splits")
    if isinstance(splits, dict) and splits:
        blocks += split_tables(splits)
        histograms = {name: s["length_histogram"] for name, s in splits.items()
                      if isinstance(s, dict) and isinstance(s.get("length_histogram"), dict)}
        if histograms:
            png = token_length_histogram_png(histograms, summary.get("max_length"))
            blocks.append(Image(LENGTH_HISTOGRAM_FILE, png, "token length histogram per split"))
    sample = summary.get("sample")
    if isinstance(sample, dict) and isinstance(sample.get("text"), str):
        facts = [(_humanize(key), plain(value)) for key, value in sample.items() if key != "text"]
        blocks += [Facts(facts, caption="Sample row as the model sees it (supervised tokens in [[...]])"),
                   Code(sample["text"])]
    for key, value in summary.items():
        if isinstance(value, dict) and key not in ("splits", "sample"):
            blocks.append(mapping_table(value, key_header="", caption=_humanize(key)))
    findings = [finding for finding in summary.get("findings") or [] if isinstance(finding, dict)]
    if findings:
        rows = [[plain(f.get("kind")), plain(f.get("split")), plain(f.get("count")), plain(f.get("message"))]
                for f in findings]
        blocks.append(Table(["finding", "split", "rows", "message"], rows, caption="Data check findings"))
    return Section("Data", blocks)


def split_tables(splits: dict) -> list[Block]:
    """A table of each split's scalar entries (rows, file, truncation counts), then one table per nested entry
    (token length statistics, label balance), each with a row per split."""
    summaries = {name: value for name, value in splits.items() if isinstance(value, dict)}
    keys = [key for key in dict.fromkeys(key for summary in summaries.values() for key in summary)
            if key != "length_histogram"]  # drawn as a figure
    nested = [key for key in keys if any(isinstance(s.get(key), dict) for s in summaries.values())]
    flat = [key for key in keys if key not in nested]
    rows = [[name, *(plain(summary.get(key)) for key in flat)] for name, summary in summaries.items()]
    tables: list[Block] = [Table(["split", *map(_humanize, flat)], rows, caption="Splits")]
    if "label_counts" in nested and "label_fractions" in nested:
        tables.append(label_balance_table(summaries))
        nested = [key for key in nested if key not in ("label_counts", "label_fractions")]
    for key in nested:
        columns = list(dict.fromkeys(inner for s in summaries.values() for inner in (s.get(key) or {})))
        show = format_length if key == "tokens" else plain
        rows = [[name, *(show((s.get(key) or {}).get(c)) for c in columns)] for name, s in summaries.items()]
        tables.append(Table(["split", *columns], rows, caption=SPLIT_DETAIL_CAPTIONS.get(key, _humanize(key))))
    return tables


def label_balance_table(summaries: dict[str, dict]) -> Table:
    """Rows per label in each split, as ``count (share)``."""
    labels = list(dict.fromkeys(label for s in summaries.values() for label in (s.get("label_counts") or {})))
    rows = []
    for name, summary in summaries.items():
        counts, fractions = summary.get("label_counts") or {}, summary.get("label_fractions") or {}
        cells = []
        for label in labels:
            count, fraction = counts.get(label), fractions.get(label)
            cells.append(f"{plain(count)} ({fraction:.1%})" if _is_number(fraction) else plain(count))
        rows.append([name, *cells])
    return Table(["split", *labels], rows, caption="Label balance")


def truncation_text(truncation: dict) -> str:
    """One line from `TruncationStats` fields, e.g. ``12 of 1,800 rows truncated; 340 supervised tokens lost``."""
    text = f"{plain(truncation.get('truncated_rows'))} of {plain(truncation.get('rows'))} rows truncated"
    text += f"; {plain(truncation.get('supervised_tokens_lost'))} supervised tokens lost"
    if truncation.get("rows_without_supervision"):
        text += f"; {plain(truncation['rows_without_supervision'])} rows left with no supervised token"
    return text


def training_section(summary: dict | None, metrics: list[dict]) -> Section:
    blocks: list[Block] = []
    if summary is None:
        blocks.append(Text(f"Training summary {NOT_AVAILABLE} (no train_summary.json: run `tunesmith train`)."))
    else:
        blocks.append(Facts(training_facts(summary)))
    train, validation = loss_points(metrics)
    if train or validation:
        best = (summary or {}).get("best_step")
        png = loss_curve_png(train, validation, best_step=best if _is_number(best) else None)
        blocks.append(Image(LOSS_CURVE_FILE, png, "training and validation loss by step"))
    else:
        blocks.append(Text(f"Loss curve {NOT_AVAILABLE} (no metrics.jsonl yet)."))
    return Section("Training", blocks)


def training_facts(summary: dict) -> list[tuple[str, str]]:
    described = [
        ("steps", "optimizer steps", plain),
        ("planned_steps", "planned steps", plain),
        ("best_step", "best step", plain),
        ("best_val_loss", "best validation loss", plain),
        ("stopped_early", "stopped early", plain),
        ("train_rows", "training rows", plain),
        ("validation_rows", "validation rows", plain),
        ("train_tokens", "training tokens", plain),
        ("elapsed_s", "training time", format_duration),
        ("tokens_per_s", "throughput (tokens/s)", format_length),
        ("device", "device", plain),
        ("dtype", "dtype", plain),
        ("threads", "CPU threads", plain),
    ]
    facts = [(label, show(summary[key])) for key, label, show in described if summary.get(key) is not None]
    trainable, total = summary.get("trainable_params"), summary.get("total_params")
    if _is_number(trainable) and _is_number(total) and total:
        facts.append(("trainable parameters", f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)"))
    elif _is_number(trainable):
        facts.append(("trainable parameters", f"{trainable:,}"))
    return facts


def loss_points(metrics: list[dict]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``(step, loss)`` of training lines and ``(step, val_loss)`` of validation lines, in file order."""
    train = [(line["step"], line["loss"]) for line in metrics if _is_number(line.get("loss")) and "step" in line]
    validation = [
        (line["step"], line["val_loss"]) for line in metrics if _is_number(line.get("val_loss")) and "step" in line
    ]
    return train, validation


def evaluation_section(eval_data: dict | None) -> Section:
    if eval_data is None:
        return Section("Evaluation", [Text(f"{NOT_AVAILABLE} (no eval.json: run `tunesmith eval`)")])
    facts = [("task", plain(eval_data.get("task"))), ("test rows", plain(eval_data.get("num_examples")))]
    if eval_data.get("labels"):
        facts.append(("labels", plain(eval_data["labels"])))
    blocks: list[Block] = [Facts(facts)]
    if not eval_data.get("base"):
        blocks.append(Text(f"Base model metrics {NOT_AVAILABLE} (the base model was not evaluated)."))
    blocks.append(Table(METRIC_HEADER, metric_rows(eval_data), caption="Base vs tuned on the test split"))
    blocks += classification_blocks(eval_data)
    return Section("Evaluation", blocks)


def metric_rows(eval_data: dict) -> list[list[str]]:
    """``[metric, base, tuned, delta]`` for every scalar metric (nested ones such as per_class are left out)."""
    base, tuned = eval_data.get("base") or {}, eval_data.get("tuned") or {}
    # None stays in: a metric that could not be computed (e.g. no test rows) shows as "not available".
    names = [name for name in dict.fromkeys([*tuned, *base]) if _is_scalar_metric(tuned.get(name), base.get(name))]
    rows = []
    for name in names:
        base_value, tuned_value = base.get(name), tuned.get(name)
        both = _is_number(base_value) and _is_number(tuned_value)
        delta = format_number(tuned_value - base_value, signed=True) if both else NOT_AVAILABLE
        rows.append([name, plain(base_value), plain(tuned_value), delta])
    return rows


def classification_blocks(eval_data: dict) -> list[Block]:
    """Per-class F1 and confusion matrices (tables, plus one heatmap image) when the metrics have them."""
    tuned, base = eval_data.get("tuned") or {}, eval_data.get("base") or {}
    blocks: list[Block] = []
    per_class_table = per_class_f1_table(tuned.get("per_class"), base.get("per_class"))
    if per_class_table:
        blocks.append(per_class_table)
    panels = []
    for name, metrics in (("tuned", tuned), ("base", base)):
        confusion = metrics.get("confusion_matrix")
        if not (isinstance(confusion, dict) and confusion.get("labels") and confusion.get("matrix")):
            continue
        labels, matrix = [str(label) for label in confusion["labels"]], confusion["matrix"]
        header = ["true \u2193 / predicted \u2192", *labels]
        rows = [[label, *(plain(count) for count in row)] for label, row in zip(labels, matrix)]
        blocks.append(Table(header, rows, caption=f"Confusion matrix, {name} model"))
        panels.append((f"{name} model", labels, matrix))
    if panels:
        blocks.append(Image(CONFUSION_FILE, confusion_matrices_png(panels), "confusion matrix heatmaps"))
    return blocks


def per_class_f1_table(tuned: dict | None, base: dict | None) -> Table | None:
    if not isinstance(tuned, dict) or not tuned:
        return None
    base = base if isinstance(base, dict) else {}
    header = ["label", "support", "base F1", "tuned F1", "tuned precision", "tuned recall"]
    rows = [
        [
            str(label), plain(scores.get("support")), plain((base.get(label) or {}).get("f1")),
            plain(scores.get("f1")), plain(scores.get("precision")), plain(scores.get("recall")),
        ]
        for label, scores in tuned.items()
    ]
    return Table(header, rows, caption="Per-class scores")


def examples_section(predictions: list[dict], count: int) -> Section:
    if not predictions:
        return Section("Example predictions", [Text(f"{NOT_AVAILABLE} (no predictions.jsonl: run `tunesmith eval`)")])
    chosen = pick_examples(predictions, count)
    if not chosen:
        return Section("Example predictions", [Text("None shown (evaluate.num_examples is 0).")])
    intro = Text(
        f"{len(chosen)} of {len(predictions)} test predictions: first rows the tuned model gets right and the base "
        "model gets wrong, then rows the tuned model gets wrong."
    )
    blocks: list[Block] = [intro]
    for number, row in enumerate(chosen, start=1):
        caption = (
            f"Example {number} ({row.get('source', 'unknown source')}): tuned {_verdict(row.get('tuned_correct'))}, "
            f"base {_verdict(row.get('base_correct'))}"
        )
        items = [
            ("prompt", shorten(row.get("prompt"), PROMPT_CHARS)),
            ("reference", shorten(row.get("reference"), ANSWER_CHARS)),
            ("base", shorten(row.get("base_prediction"), ANSWER_CHARS)),
            ("tuned", shorten(row.get("tuned_prediction"), ANSWER_CHARS)),
        ]
        blocks.append(Facts(items, caption=caption))
    return Section("Example predictions", blocks)


def pick_examples(predictions: list[dict], count: int) -> list[dict]:
    """Up to ``count`` rows: about half where the tuned model fixed a base mistake, the rest tuned mistakes.

    When one kind runs short the other fills in, then rows of neither kind (e.g. generation without a
    correctness flag). Within each kind, file order is kept, so the choice is deterministic.
    """
    fixed = [row for row in predictions if row.get("tuned_correct") is True and row.get("base_correct") is False]
    mistakes = [row for row in predictions if row.get("tuned_correct") is False]
    chosen_ids = {id(row) for row in fixed + mistakes}
    others = [row for row in predictions if id(row) not in chosen_ids]
    fixed_quota = min(len(fixed), max(count - len(mistakes), (count + 1) // 2))
    chosen = fixed[:fixed_quota] + mistakes[: count - fixed_quota]
    return chosen + others[: count - len(chosen)]


# ---------------------------------------------------------------------------------------------------------------
# Reading run files


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when the stage that writes it has not run yet."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        problem = f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        raise RunError(problem, "re-run the stage that writes it") from None


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON Lines file ([] when missing). A cut-off last line is skipped: training appends to
    metrics.jsonl while it runs, so a report built mid-run can catch a line half-written."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((number for number, line in enumerate(lines, start=1) if line.strip()), default=0)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == last:
                break
            raise RunError(f"{path}:{number} is not valid JSON", "re-run the stage that writes it") from None
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Formatting values as text


def format_number(value: float, signed: bool = False) -> str:
    """Integers with thousands separators; floats with 4 decimals below 100 and 1 decimal from 100 up."""
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign},}"
    if abs(value) >= 100:
        return f"{value:{sign},.1f}"
    return f"{value:{sign}.4f}"


def format_length(value: Any) -> str:
    """A count that may be a statistic (mean, percentile): no decimals when whole, else one."""
    if not _is_number(value):
        return plain(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_duration(seconds: float) -> str:
    if not _is_number(seconds):
        return plain(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def plain(value: Any) -> str:
    """Any JSON value as display text; missing values read "not available"."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return format_number(value)
    if isinstance(value, list):
        return ", ".join(plain(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def mapping_table(mapping: dict, key_header: str, caption: str) -> Table:
    """A mapping of scalars as two columns; a mapping of mappings as one row per key and a column per inner key."""
    if all(isinstance(value, dict) for value in mapping.values()):
        columns = list(dict.fromkeys(inner for value in mapping.values() for inner in value))
        rows = [[str(key), *(plain(value.get(column)) for column in columns)] for key, value in mapping.items()]
        return Table([key_header, *columns], rows, caption)
    return Table([key_header, "value"], [[str(key), plain(value)] for key, value in mapping.items()], caption)


def shorten(text: Any, limit: int) -> str:
    """One line of at most ``limit`` characters (whitespace runs collapsed), ending in an ellipsis when cut."""
    if text is None:
        return NOT_AVAILABLE
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def _verdict(correct: bool | None) -> str:
    return {True: "right", False: "wrong"}.get(correct, "unscored")


def _is_flat(value: Any) -> bool:
    """A scalar or a list of scalars: fits on one line of a facts list."""
    items = value if isinstance(value, list) else [value]
    return not any(isinstance(item, (dict, list)) for item in items)


def _humanize(key: str) -> str:
    return key.replace("_", " ")


def _is_scalar_metric(*values: Any) -> bool:
    """No value is nested detail (per_class, confusion_matrix); missing or uncomputed (None) ones are fine."""
    return all(value is None or _is_number(value) for value in values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_NUMBER_TEXT = re.compile(r"[+-]?[\d,]*\.?\d+%?")


def numeric_columns(table: Table) -> list[bool]:
    """Which columns (after the first, which names the row) hold only numbers: those are right-aligned so
    their digits line up."""
    def numeric(cell: str) -> bool:
        return cell == NOT_AVAILABLE or _NUMBER_TEXT.fullmatch(cell) is not None

    return [index > 0 and all(numeric(row[index]) for row in table.rows) for index in range(len(table.header))]


# ---------------------------------------------------------------------------------------------------------------
# Markdown

_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|])")


def markdown_text(text: str) -> str:
    """Plain text safe in Markdown: HTML-escaped (Markdown passes raw HTML through) and markup characters escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_markdown(report: Report) -> str:
    lines = [f"# {markdown_text(report.title)}", "", markdown_text(report.subtitle), ""]
    for section in report.sections:
        lines += [f"## {markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += _markdown_block(block) + [""]
    return "\n".join(lines)


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [markdown_text(block.text)]
    if isinstance(block, Facts):
        caption = [f"**{markdown_text(block.caption)}**", ""] if block.caption else []
        return caption + [f"- **{markdown_text(label)}:** {markdown_text(value)}" for label, value in block.items]
    if isinstance(block, Table):
        caption = [f"**{markdown_text(block.caption)}**", ""] if block.caption else []
        header = "| " + " | ".join(markdown_text(cell) for cell in block.header) + " |"
        rule = "|" + "|".join("---:" if numeric else "---" for numeric in numeric_columns(block)) + "|"
        rows = ["| " + " | ".join(markdown_text(cell) for cell in row) + " |" for row in block.rows]
        return caption + [header, rule] + rows
    if isinstance(block, Code):
        # A fence longer than any backtick run inside, so config text can never close it early.
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return [fence + block.language, block.text.rstrip("\n"), fence]
    if isinstance(block, Image):
        return [f"![{markdown_text(block.alt)}]({block.file_name})"]
    raise TypeError(f"unknown report block {block!r}")


# ---------------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.subtitle { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; vertical-align: top; }
thead th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { text-align: left; background: #fafafa; white-space: nowrap; }
table.facts td { white-space: pre-wrap; word-break: break-word; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
img { max-width: 100%; }
"""


def render_html(report: Report) -> str:
    escape = html.escape
    body = [f"<h1>{escape(report.title)}</h1>", f'<p class="subtitle">{escape(report.subtitle)}</p>']
    for section in report.sections:
        body.append(f"<section>\n<h2>{escape(section.title)}</h2>")
        body += [_html_block(block) for block in section.blocks]
        body.append("</section>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{escape(report.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", *body,
        "</body>", "</html>", "",
    ])


def _html_block(block: Block) -> str:
    escape = html.escape
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Facts):
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        rows = "".join(f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>" for label, value in block.items)
        return f'<table class="facts">{caption}<tbody>{rows}</tbody></table>'
    if isinstance(block, Table):
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        header = "".join(f"<th>{escape(cell)}</th>" for cell in block.header)
        classes = [' class="num"' if numeric else "" for numeric in numeric_columns(block)]
        rows = "".join(
            "<tr>" + "".join(f"<td{cls}>{escape(cell)}</td>" for cls, cell in zip(classes, row)) + "</tr>"
            for row in block.rows
        )
        return f'<table class="grid">{caption}<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'
    if isinstance(block, Code):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{escape(block.alt)}" src="data:image/png;base64,{data}">'
    raise TypeError(f"unknown report block {block!r}")
