"""The report of `tunesmith compare-rag`: the four arms side by side (scores, answer time, prompt tokens) with a bar
chart, retrieval quality per retriever, what fitting passages into prompts cost, every arm's answers to the same
questions, and the times. ``report.md`` (its chart beside it) and a self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import TASK_METRICS
from tunesmith.document import (
    Document,
    Facts,
    Image,
    Section,
    Table,
    Text,
    format_duration,
    plain,
    write_document,
)
from tunesmith.document.figures import figure_png
from tunesmith.text import shorten

CHART_FILE = "arms.png"
QA_METRICS = ("squad_em", "squad_f1")


def scored_metrics(result: dict) -> list[str]:
    """The metrics the arms are compared on: SQuAD EM and F1 for generation, else the task's own."""
    return list(QA_METRICS) if result["task"] == "generation" else list(TASK_METRICS[result["task"]])


def arms_chart_png(result: dict, metrics: list[str]) -> bytes:
    arms = list(result["arms"])
    figure = Figure(figsize=(7.0, 3.4), dpi=100)
    axes = figure.add_subplot()
    width = 0.8 / len(metrics)
    for offset, metric in enumerate(metrics):
        values = [result["arms"][arm]["metrics"].get(metric) or 0.0 for arm in arms]
        positions = [index + (offset - (len(metrics) - 1) / 2) * width for index in range(len(arms))]
        bars = axes.bar(positions, values, width, label=metric)
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(range(len(arms)), arms)
    axes.set_ylabel("score")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure_png(figure)


def comparison_document(result: dict, config: RunConfig) -> Document:
    metrics = scored_metrics(result)
    arms = result["arms"]
    header = ["arm", *metrics, "seconds / question", "prompt tokens / question", "training"]
    rows = [[arm, *(plain(entry["metrics"].get(metric)) for metric in metrics),
             f"{entry['seconds_per_question']:.3f}", f"{entry['prompt_tokens_per_question']:.1f}",
             format_duration(entry["train_seconds"]) if entry.get("train_seconds") is not None else "none"]
            for arm, entry in arms.items()]
    sections = [Section("The four arms", [
        Text(f"{result['num_questions']} test questions, answered by each arm. Passages: {result['retriever']}, top "
             f"{result['top_k']}. Seconds per question: answering time over the questions (batched as evaluation "
             f"batches them)."),
        Table(header, rows),
        Image(CHART_FILE, arms_chart_png(result, metrics), f"bar chart of {', '.join(metrics)} per arm"),
    ])]
    if result["retrieval"]:
        recalls = [name for name in next(iter(result["retrieval"].values())) if name.startswith("recall@")]
        sections.append(Section("Retrieval", [
            Text("How often a passage of the question's gold document is retrieved among the first k (test "
                 "questions with one)."),
            Table(["retriever", *recalls, "MRR", "questions"],
                  [[name, *(plain(values[recall]) for recall in recalls), plain(values["mrr"]),
                    plain(values["questions"])] for name, values in result["retrieval"].items()]),
        ]))
    fit = result["test_prompts"]
    sections.append(Section("Passages in the prompts", [Facts([
        ("prompts", plain(fit["rows"])), ("passages shown", plain(fit["passages_shown"])),
        ("passages cut to fit data.max_length", plain(fit["passages_cut"])),
        ("passages left out to fit", plain(fit["passages_dropped"])),
    ])]))
    examples = result["examples"]
    if examples:
        sections.append(Section("Example answers", [Table(
            ["question", "reference", *arms],
            [[shorten(row["question"], 120), row["reference"], *(shorten(row[arm], 80) for arm in arms)]
             for row in examples])]))
    sections.append(Section("Times", [Facts([
        ("retrieval index", f"{format_duration(result['index']['seconds'])}"
                            f"{' (from the cache)' if result['index']['from_cache'] else ''}"),
        *((f"answering: {arm}", format_duration(entry["answer_seconds"])) for arm, entry in arms.items()),
        *((f"training: {arm}", format_duration(entry["train_seconds"])) for arm, entry in arms.items()
          if entry.get("train_seconds") is not None),
        ("whole comparison", format_duration(result["seconds"])),
        ("trained arms reused", ", ".join(result["reused_runs"]) or "none"),
    ])]))
    return Document(title="SFT, RAG, or both", subtitle=f"{config.method} fine-tunes of {config.model.name}",
                    sections=sections)


def write_report(folder: Path, result: dict, config: RunConfig) -> None:
    write_document(comparison_document(result, config), folder / "report.md", folder / "report.html")
