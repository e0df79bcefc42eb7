"""The sections of the run report: evaluation (with example predictions), training, data, and the config.

Each takes what the run's files hold (parsed JSON, possibly missing) and returns a `Section`; a missing input
shows as "not available" instead of failing, so a report mid-way through a run is still useful.
"""

from __future__ import annotations

from typing import Any

from tunesmith.config import RunConfig, dump_config
from tunesmith.document import (
    NOT_AVAILABLE,
    Block,
    Code,
    Facts,
    Image,
    Section,
    Table,
    Text,
    format_duration,
    format_length,
    humanize,
    is_number,
    plain,
)
from tunesmith.predict.validation_values import describe_validation
from tunesmith.report.plots import (
    confusion_matrices_png,
    loss_curve_png,
    reliability_diagram_png,
    token_length_histogram_png,
)
from tunesmith.results import baseline_verdict, comparison_table
from tunesmith.text import shorten

PROMPT_CHARS = 200
ANSWER_CHARS = 300
MAX_LISTED = 20
"""Rows named in a list (the rest are counted)."""
LOSS_CURVE_FILE = "loss_curve.png"
CONFUSION_FILE = "confusion_matrix.png"
LENGTH_HISTOGRAM_FILE = "token_lengths.png"
RELIABILITY_FILE = "reliability.png"
SPLIT_DETAIL_CAPTIONS = {"tokens": "Tokens per row (before truncation)"}


def config_section(config: RunConfig) -> Section:
    """The resolved config, last and folded: reference material, not the story."""
    return Section("Config", [Code(dump_config(config), "yaml")], folded=True)


def data_section(data_summary: dict | None, train_summary: dict | None, figures: bool = True) -> Section:
    """The data check's summary (``DataReport.to_dict``): its findings first (leakage, duplicates: what should make
    a reader cautious), then scalar entries as facts, the splits as tables (one row per split), the sample row as
    text, and any other mapping as its own table. Truncation of the rows actually trained on comes from the
    training summary. ``figures=False`` leaves out the token length histogram (the UI's run page, whose policy
    allows no inline image)."""
    truncation = (train_summary or {}).get("truncation")
    if data_summary is None and not truncation:
        return Section("Data", [Text(f"{NOT_AVAILABLE} (no data_summary.json yet: training writes it)")])
    summary = data_summary or {}
    blocks: list[Block] = []
    findings = [finding for finding in summary.get("findings") or [] if isinstance(finding, dict)]
    if findings:
        rows = [[plain(f.get("kind")), plain(f.get("split")), plain(f.get("count")), plain(f.get("message"))]
                for f in findings]
        blocks.append(Table(["finding", "split", "rows", "message"], rows, caption="Data check findings"))
    facts = [(humanize(key), plain(value)) for key, value in summary.items() if key != "findings" and _is_flat(value)]
    if isinstance(truncation, dict):
        facts.append(("truncation while training", truncation_text(truncation)))
    if facts:
        blocks.append(Facts(facts))
    splits = summary.get("splits")
    if isinstance(splits, dict) and splits:
        blocks += split_tables(splits)
        histograms = {name: s["length_histogram"] for name, s in splits.items()
                      if isinstance(s, dict) and isinstance(s.get("length_histogram"), dict)}
        if histograms and figures:
            png = token_length_histogram_png(histograms, summary.get("max_length"))
            blocks.append(Image(LENGTH_HISTOGRAM_FILE, png, "token length histogram per split"))
    sample = summary.get("sample")
    if isinstance(sample, dict) and isinstance(sample.get("text"), str):
        facts = [(humanize(key), plain(value)) for key, value in sample.items() if key != "text"]
        blocks += [Facts(facts, caption="Sample row as the model sees it (supervised tokens in [[...]])"),
                   Code(sample["text"])]
    for key, value in summary.items():
        if isinstance(value, dict) and key not in ("splits", "sample"):
            blocks.append(mapping_table(value, key_header="", caption=humanize(key)))
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
    tables: list[Block] = [Table(["split", *map(humanize, flat)], rows, caption="Splits")]
    if "label_counts" in nested and "label_fractions" in nested:
        tables.append(label_balance_table(summaries))
        nested = [key for key in nested if key not in ("label_counts", "label_fractions")]
    for key in nested:
        columns = list(dict.fromkeys(inner for s in summaries.values() for inner in (s.get(key) or {})))
        show = format_length if key == "tokens" else plain
        rows = [[name, *(show((s.get(key) or {}).get(c)) for c in columns)] for name, s in summaries.items()]
        tables.append(Table(["split", *columns], rows, caption=SPLIT_DETAIL_CAPTIONS.get(key, humanize(key))))
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
            cells.append(f"{plain(count)} ({fraction:.1%})" if is_number(fraction) else plain(count))
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
        png = loss_curve_png(train, validation, best_step=best if is_number(best) else None)
        blocks.append(Image(LOSS_CURVE_FILE, png, "training and validation loss by step"))
    else:
        blocks.append(Text(f"Loss curve {NOT_AVAILABLE} (no metrics.jsonl yet)."))
    return Section("Training", blocks)


def training_facts(summary: dict) -> list[tuple[str, str]]:
    described = [
        ("steps", "optimizer steps", plain),
        ("planned_steps", "planned steps", plain),
        ("budget", "how long, and why", lambda budget: budget["why"]),
        ("best_step", "best step", plain),
        ("best_val_loss", "best validation loss", plain),
        ("best_val_metrics", "validation at the best step", describe_validation),
        ("stopped_early", "stopped early", plain),
        ("train_rows", "training rows", plain),
        ("validation_rows", "validation rows", plain),
        ("train_tokens", "training tokens", plain),
        ("elapsed_s", "training time", format_duration),
        ("tokens_per_s", "throughput (real tokens/s)", format_length),
        ("device", "device", plain),
        ("dtype", "dtype", plain),
        ("threads", "CPU threads", plain),
    ]
    facts = [(label, show(summary[key])) for key, label, show in described if summary.get(key) is not None]
    processes = summary.get("processes")
    if is_number(processes):
        strategy = f", {summary['strategy']}" if summary.get("strategy") else ""
        facts.append(("processes", f"{processes} process{'es' if processes > 1 else ''}{strategy}; global batch "
                                   f"{plain(summary.get('global_batch'))}"))
    trainable, total = summary.get("trainable_params"), summary.get("total_params")
    if is_number(trainable) and is_number(total) and total:
        facts.append(("trainable parameters", f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)"))
    elif is_number(trainable):
        facts.append(("trainable parameters", f"{trainable:,}"))
    return facts


def loss_points(metrics: list[dict]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``(step, loss)`` of training lines and ``(step, val_loss)`` of validation lines, in file order."""
    train = [(line["step"], line["loss"]) for line in metrics if is_number(line.get("loss")) and "step" in line]
    validation = [
        (line["step"], line["val_loss"]) for line in metrics if is_number(line.get("val_loss")) and "step" in line
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
    elif eval_data.get("base_from_cache"):
        cache = eval_data.get("base_cache") or {}
        blocks.append(Text(f"Base model scores reused from the evaluation cache: computed {cache.get('computed_at')} "
                           f"on the same weights, test rows and settings (key {cache.get('key')})."))
    blocks.append(comparison_table(eval_data))
    against_baseline = baseline_verdict(eval_data)
    if against_baseline:
        blocks.append(Text(against_baseline))
    leakage = eval_data.get("leakage") or {}
    if leakage.get("leaked_rows"):
        shown = ", ".join(leakage.get("locations", [])[:MAX_LISTED])
        more = leakage["leaked_rows"] - min(MAX_LISTED, len(leakage.get("locations", [])))
        blocks.append(Facts([("leaked test rows", f"{leakage['leaked_rows']}: {shown}"
                              + (f" and {more} more" if more > 0 else ""))],
                            caption="Test rows also in train (exact or near), left out of the 'unleaked' columns"))
    elif leakage.get("checked") is False:
        blocks.append(Text(f"Leakage from train not checked: {leakage.get('reason')}."))
    blocks += classification_blocks(eval_data)
    blocks += calibration_blocks(eval_data.get("calibration"))
    return Section("Evaluation", blocks)


def calibration_blocks(calibration: dict | None) -> list[Block]:
    """eval.json's ``calibration``: ECE (with its interval) and Brier score before and after temperature scaling,
    what the temperature did, and the reliability diagram; or why there is none. Nothing for an eval.json written
    before calibration existed."""
    if not isinstance(calibration, dict):
        return []
    if calibration.get("skipped"):
        return [Text(f"Confidence calibration: none ({calibration['skipped']}).")]
    before, after = calibration.get("before") or {}, calibration.get("after") or {}
    rows = [["ECE (95% interval)", _ece_text(before), _ece_text(after)],
            ["Brier score", plain(before.get("brier")), plain(after.get("brier"))]]
    caption = (f"Calibration of the label probabilities on {plain(calibration.get('test_rows'))} test rows, "
               f"temperature {plain(calibration.get('temperature'))} fitted on "
               f"{plain(calibration.get('validation_rows'))} validation rows (lower is better for both)")
    blocks: list[Block] = [Table(["", "before", "after"], rows, caption=caption),
                           Text(temperature_effect(calibration))]
    curves = [(f"before (ECE {plain(before.get('ece'))})", before.get("bins") or []),
              (f"after (ECE {plain(after.get('ece'))})", after.get("bins") or [])]
    if any(b.get("count") for _, bins in curves for b in bins):
        png = reliability_diagram_png(curves, int(calibration.get("test_rows") or 0))
        blocks.append(Image(RELIABILITY_FILE, png, "reliability diagram before and after calibration"))
    return blocks


def temperature_effect(calibration: dict) -> str:
    """One line: what the fitted temperature did to the probabilities and to the ECE."""
    temperature = calibration.get("temperature")
    before, after = (calibration.get(side, {}).get("ece") for side in ("before", "after"))
    if not (is_number(temperature) and is_number(before) and is_number(after)):
        return "The temperature's effect is not available."
    if abs(temperature - 1) < 0.05:
        what = "left the probabilities nearly as they were (the model was about as sure as it was right)"
    elif temperature > 1:
        what = "softened the probabilities (the model was more sure than it was right)"
    else:
        what = "sharpened the probabilities (the model was less sure than it was right)"
    change = "lowered" if after < before else "did not lower"
    return (f"Temperature {temperature:.3g} {what}; it {change} the ECE on the test rows, {before:.4f} → "
            f"{after:.4f}. Accuracy is unchanged: scaling never changes the predicted label.")


def _ece_text(figures: dict) -> str:
    interval = figures.get("ece_interval")
    shown = plain(figures.get("ece"))
    if isinstance(interval, list) and len(interval) == 2 and all(is_number(v) for v in interval):
        shown += f" ({interval[0]:.4f}–{interval[1]:.4f})"
    return shown


def classification_blocks(eval_data: dict) -> list[Block]:
    """Per-class F1 and confusion matrices (tables, plus one heatmap image) when the metrics have them."""
    tuned, base = eval_data.get("tuned") or {}, eval_data.get("base") or {}
    blocks: list[Block] = []
    baselines = {name: scores.get("per_class") for name, scores in (eval_data.get("baselines") or {}).items()}
    per_class_table = per_class_f1_table(tuned.get("per_class"), base.get("per_class"), baselines)
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


def per_class_f1_table(tuned: dict | None, base: dict | None, baselines: dict[str, dict | None]) -> Table | None:
    """Per label: its support, the F1 of the base model, the tuned model and each baseline (``{name: per_class}``),
    and the tuned model's precision and recall."""
    if not isinstance(tuned, dict) or not tuned:
        return None
    base = base if isinstance(base, dict) else {}
    others = {name: per_class if isinstance(per_class, dict) else {} for name, per_class in baselines.items()}
    header = ["label", "support", "base F1", "tuned F1", *(f"{name} F1" for name in others), "tuned precision",
              "tuned recall"]
    rows = [
        [
            str(label), plain(scores.get("support")), plain((base.get(label) or {}).get("f1")),
            plain(scores.get("f1")), *(plain((per_class.get(label) or {}).get("f1")) for per_class in others.values()),
            plain(scores.get("precision")), plain(scores.get("recall")),
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
            f"Example {number} ({row.get('location', 'unknown row')}): tuned {_verdict(row.get('tuned_correct'))}, "
            f"base {_verdict(row.get('base_correct'))}"
        )
        items = [
            ("prompt", _shown(row.get("prompt"), PROMPT_CHARS)),
            ("reference", _shown(row.get("reference"), ANSWER_CHARS)),
            ("base", _shown(row.get("base_prediction"), ANSWER_CHARS)),
            ("tuned", _shown(row.get("tuned_prediction"), ANSWER_CHARS)),
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



def mapping_table(mapping: dict, key_header: str, caption: str) -> Table:
    """A mapping of scalars as two columns; a mapping of mappings as one row per key and a column per inner key."""
    if all(isinstance(value, dict) for value in mapping.values()):
        columns = list(dict.fromkeys(inner for value in mapping.values() for inner in value))
        rows = [[str(key), *(plain(value.get(column)) for column in columns)] for key, value in mapping.items()]
        return Table([key_header, *columns], rows, caption)
    return Table([key_header, "value"], [[str(key), plain(value)] for key, value in mapping.items()], caption)



def _verdict(correct: bool | None) -> str:
    return {True: "right", False: "wrong"}.get(correct, "unscored")


def _is_flat(value: Any) -> bool:
    """A scalar or a list of scalars: fits on one line of a facts list."""
    items = value if isinstance(value, list) else [value]
    return not any(isinstance(item, (dict, list)) for item in items)


def _shown(text: Any, limit: int) -> str:
    return NOT_AVAILABLE if text is None else shorten(str(text), limit)
