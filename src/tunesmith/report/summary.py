"""The report's first section, the verdict: what was tuned, how it scores against its base, the best classic
baseline and the constant answer (`tunesmith.results.verdict.run_verdict`, which the web UI's run page says too),
how long it took, and what should make a reader cautious (leakage, truncation, other data findings)."""

from __future__ import annotations

from tunesmith.config import RunConfig
from tunesmith.config.vocabulary import METHODS, uses_adapter
from tunesmith.document import (
    Facts,
    Section,
    Table,
    Text,
    format_duration,
    format_length,
    format_value,
    is_number,
    plain,
)
from tunesmith.results import comparison_table
from tunesmith.results.verdict import Verdict, run_verdict

HEADLINE_METRICS = {
    "classification": ("accuracy", "f1", "loss"),
    "regression": ("mse", "pearson", "loss"),
    "generation": ("rouge_l", "bleu", "loss"),
}


def summary_section(config: RunConfig, eval_data: dict | None, train_summary: dict | None,
                    data_summary: dict | None, timings: dict | None,
                    gate: tuple[str | None, str | None] = (None, None)) -> Section:
    """``gate``: the run's gate state and line (`tunesmith.results.gate.gate_state`), which the verdict names."""
    method = METHODS[config.method]
    if uses_adapter(config.method):
        method += f" r={config.lora.r}, alpha={config.lora.alpha:g}"
    facts = [("model", f"{config.model.name} ({method})")]
    blocks = []
    if eval_data:
        facts.insert(0, ("task", plain(eval_data.get("task"))))
        facts.append(("test rows", format_length(eval_data.get("num_examples"))))
        headline = headline_table(eval_data)
        if headline.rows:
            blocks.append(Text(verdict(eval_data, *gate)))
            blocks.append(headline)
    else:
        blocks.append(Text("Not evaluated yet: run `tunesmith eval` for the verdict."))
    if train_summary:
        processes = train_summary.get("processes") or 1
        facts.append(("training", f"{plain(train_summary.get('steps'))} steps in "
                                  f"{format_duration(train_summary.get('elapsed_s'))}"
                                  + (f" on {processes} processes" if processes > 1 else "")))
    if timings and timings.get("total") is not None:
        facts.append(("whole run", format_duration(timings["total"])))
    blocks.insert(0, Facts(facts))
    cautions = warnings(eval_data, train_summary, data_summary)
    if cautions:
        blocks.append(Facts(cautions, caption="Warnings"))
    return Section("Summary", blocks)


def headline_table(eval_data: dict) -> Table:
    """The rows of the comparison table that say the most about the task."""
    table = comparison_table(eval_data)
    wanted = HEADLINE_METRICS.get(eval_data.get("task"), ())
    return Table(table.header, [row for row in table.rows if row[0] in wanted], caption=table.caption)


def verdict_title(judged: Verdict) -> str:
    """The verdict in a few words, as the report's summary and the UI's run page open with it:
    ``Verdict: degenerate (answers one label to every row)``."""
    if judged.level == "unknown":
        return "Not evaluated yet"
    return f"Verdict: {judged.level} ({judged.headline})"


def verdict(eval_data: dict, gate_state: str | None = None, gate_line: str | None = None) -> str:
    """The run's verdict in a paragraph: its title, then `verdict_sentences`."""
    judged, sentences = verdict_sentences(eval_data, gate_state, gate_line)
    return " ".join([f"{verdict_title(judged)}.", *sentences])


def verdict_sentences(eval_data: dict | None, gate_state: str | None = None,
                      gate_line: str | None = None) -> tuple[Verdict, list[str]]:
    """The run's `Verdict` (`run_verdict`) and its sentences: one each on the base, the best baseline, the constant
    answer (a degenerate model) and the gate. When eval.json scores the rows not leaked from train apart, the first
    sentence goes on with them: ``...on 1,000 test rows; on the 941 rows not leaked from train: base 0.7000 →
    tuned 0.9800 (+0.2800).``"""
    judged = run_verdict(eval_data, gate_state, gate_line)
    sentences = list(judged.sentences)
    unleaked = (eval_data or {}).get("unleaked") or {}
    base, tuned = ((unleaked.get(side) or {}).get(judged.metric) for side in ("base", "tuned"))
    if judged.metric and is_number(base) and is_number(tuned):
        sentences[0] = (f"{sentences[0].removesuffix('.')}; on the {plain(unleaked.get('num_examples'))} rows not "
                        f"leaked from train: base {format_value(base)} → tuned {format_value(tuned)} "
                        f"({format_value(tuned - base, signed=True)}).")
    return judged, sentences


def warnings(eval_data: dict | None, train_summary: dict | None, data_summary: dict | None) -> list[tuple[str, str]]:
    found = []
    leakage = (eval_data or {}).get("leakage") or {}
    if leakage.get("leaked_rows"):
        found.append(("leakage", f"{plain(leakage['leaked_rows'])} of {plain(eval_data['num_examples'])} test rows "
                                 "are also in train (exact or near): their scores overstate the model; the "
                                 "'unleaked' columns leave them out"))
    truncation = (train_summary or {}).get("truncation") or {}
    if truncation.get("truncated_rows"):
        found.append(("truncation", f"{plain(truncation['truncated_rows'])} of {plain(truncation.get('rows'))} "
                                    f"training rows were truncated ({plain(truncation.get('supervised_tokens_lost'))} "
                                    "supervised tokens lost)"))
    if eval_data and eval_data.get("base") is None:
        found.append(("base model", "not evaluated, so there is no delta (`tunesmith compare` evaluates it)"))
    if train_summary and train_summary.get("skipped_steps"):
        found.append(("skipped steps", f"{len(train_summary['skipped_steps'])} updates skipped for a non-finite "
                                       "loss or gradient"))
    # Test leakage has its own line above; every other finding (validation leakage too) is summed up by kind.
    other = [f for f in (data_summary or {}).get("findings") or []
             if not (f.get("kind") == "leakage" and str(f.get("split", "")).endswith("/test"))]
    if other:
        by_kind: dict[str, list[str]] = {}
        for f in other:
            by_kind.setdefault(str(f.get("kind")), []).append(f"{f.get('split')} {plain(f.get('count'))}")
        kinds = "; ".join(f"{kind} ({', '.join(counts)})" for kind, counts in by_kind.items())
        found.append(("data check", f"{kinds}: see Data"))
    if (data_summary or {}).get("unreadable_count"):
        found.append(("unreadable rows", f"{data_summary['unreadable_count']}: see Data"))
    return found
